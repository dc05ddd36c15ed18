"""The study loop's ask accounting: a resumed study counts the asks it already made, so one that
ended at the ask cap (TPE proposing only configs it had measured) is not re-opened by every resume."""

import optuna

from tuner.search import asks_made


def test_asks_made_counts_asked_trials_not_waiting_ones():
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study()
    study.enqueue_trial({"x": 1.0})
    study.enqueue_trial({"x": 2.0})
    assert asks_made(study) == 0  # enqueued, never asked
    for _ in range(3):
        trial = study.ask()
        study.tell(trial, trial.suggest_float("x", 0, 5))
    running = study.ask()  # asked and not yet told (an interrupted run leaves these)
    running.suggest_float("x", 0, 5)
    assert asks_made(study) == 4
    # The same study loaded again (a resumed run) sees the same count.
    assert asks_made(optuna.load_study(study_name=study.study_name, storage=study._storage)) == 4
