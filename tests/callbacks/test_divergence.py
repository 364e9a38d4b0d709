from src.paths import CONFIG_DIR

SGD = f"--config={CONFIG_DIR / 'sgd.yaml'}"


def test_a_diverging_run_stops_at_once_and_is_recorded_as_diverged(fit):
    results = fit(SGD, "--model.optimizer.lr=1e6", "--trainer.max_epochs=5")
    assert results["stop_reason"] == "diverged"
    assert results["epochs"] <= 1  # stopped within its first epoch, not after five
    assert results["test_acc"] is None  # NaN weights are not evaluated


def test_a_healthy_run_is_not_flagged(fit):
    results = fit(SGD, "--trainer.max_epochs=1")
    assert results["stop_reason"] == "max_epochs"
