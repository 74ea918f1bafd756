"""``minidl.nn.functional``: PyTorch's functional API, one thin name per op.

Every function here is defined next to its op in ``minidl/ops`` (where its forward and backward are);
this module only gathers the public names.
"""
from ..ops.activation import (elu, gelu, hardtanh, leaky_relu, log_softmax, relu, relu6, sigmoid, silu, softmax,
                              softplus, tanh)
from ..ops.conv import conv2d, conv_transpose2d
from ..ops.dropout import dropout, dropout2d
from ..ops.embedding import embedding, one_hot
from ..ops.layer_norm import layer_norm
from ..ops.loss import (binary_cross_entropy, binary_cross_entropy_with_logits, cross_entropy, huber_loss, kl_div,
                        l1_loss, mse_loss, nll_loss, smooth_l1_loss)
from ..ops.matmul import linear
from ..ops.norm import batch_norm
from ..ops.pool import adaptive_avg_pool2d, avg_pool2d, max_pool2d
from ..ops.resample import interpolate, pad

__all__ = ["adaptive_avg_pool2d", "avg_pool2d", "batch_norm", "binary_cross_entropy",
           "binary_cross_entropy_with_logits", "conv2d", "conv_transpose2d", "cross_entropy", "dropout", "dropout2d",
           "elu", "embedding", "gelu", "hardtanh", "huber_loss", "interpolate", "kl_div", "l1_loss", "layer_norm",
           "leaky_relu", "linear", "log_softmax", "max_pool2d", "mse_loss", "nll_loss", "one_hot", "pad", "relu",
           "relu6", "sigmoid", "silu", "smooth_l1_loss", "softmax", "softplus", "tanh"]
