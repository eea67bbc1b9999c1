"""Built-in executors: where runs execute. Each module is a plugin registered like any other."""
