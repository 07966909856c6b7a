"""The models layer: reward models under the lake root, their training, evaluation (rm_eval) and
scores (rm_predictions), and cross-fitting."""
