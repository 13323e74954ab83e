"""Sources of python-backend ``model.py`` files, copied into model repositories."""
