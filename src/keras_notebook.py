"""What the 2017 Keras notebook reported, which every table and figure of ours is set beside."""

# Test accuracy, one run each, as the notebook's prose gives it: the number, and the words shown
# beside ours. Adam's 81.5% is its three-stage schedule, ``adam_auto_staged`` here.
NOTEBOOK = {
    "rmsprop_baseline": (0.772, "77.2% (34 epochs)"),
    "rmsprop_lr_1e-3": (0.519, "51.9%"),
    "rmsprop_lr_1e-5": (0.732, "73.2% (~150 epochs)"),
    "rmsprop_decay_1e-7": (0.77, "~77%"),
    "rmsprop_decay_1e-5": (0.77, "~77%"),
    "rmsprop_decay_1e-2": (0.40, "~40%"),
    "sgd": (0.808, "80.8%"),
    "sgd_momentum": (0.798, "79.8%"),
    "sgd_nesterov": (0.802, "80.2%"),
    "adam_auto_staged": (0.815, "81.5% (Adam 1e-3, then 1e-4, then 1e-5)"),
}
