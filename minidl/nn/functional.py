"""``minidl.nn.functional``: PyTorch's functional API, one thin name per op.

Every function here is defined next to its op in ``minidl/ops`` (where its forward and backward are);
this module only gathers the public names.
"""
from ..ops.activation import leaky_relu, log_softmax, relu, sigmoid, softmax, tanh
from ..ops.conv import conv2d, conv_transpose2d
from ..ops.dropout import dropout, dropout2d
from ..ops.loss import binary_cross_entropy_with_logits, cross_entropy, mse_loss, nll_loss
from ..ops.matmul import linear
from ..ops.norm import batch_norm
from ..ops.pool import adaptive_avg_pool2d, avg_pool2d, max_pool2d
from ..ops.resample import interpolate, pad

__all__ = ["adaptive_avg_pool2d", "avg_pool2d", "batch_norm", "binary_cross_entropy_with_logits", "conv2d",
           "conv_transpose2d", "cross_entropy", "dropout", "dropout2d", "interpolate", "leaky_relu", "linear",
           "log_softmax", "max_pool2d", "mse_loss", "nll_loss", "pad", "relu", "sigmoid", "softmax", "tanh"]
