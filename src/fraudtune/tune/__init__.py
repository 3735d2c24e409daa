"""Hyperparameter search (`fraudtune tune`): run.py drives it; grid.py plans the phased grid and TPE, trial.py
trains one trial, storage.py keeps the study (SQLite or any RDB, heartbeats), results.py writes the table and the
best config; techniques.py measures the advanced techniques against one control run (`fraudtune tune techniques`)."""
