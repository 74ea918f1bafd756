"""Pictures for teaching and reports: the autograd graph of a tensor, and matplotlib figures of a run.

matplotlib is imported only when a figure is drawn, never by the core.
"""
from .graph import draw_graph
from .plots import (FACADE_CLASSES, FACADE_COLORS, colorize_labels, plot_classified_examples, plot_confusion_matrix, plot_filters,
                    plot_loss_curve, plot_per_class_accuracy, plot_pr_curves, plot_segmentation_triplets,
                    plot_training_curves)

__all__ = ["FACADE_CLASSES", "FACADE_COLORS", "colorize_labels", "draw_graph", "plot_classified_examples", "plot_confusion_matrix",
           "plot_filters", "plot_loss_curve", "plot_per_class_accuracy", "plot_pr_curves",
           "plot_segmentation_triplets", "plot_training_curves"]
