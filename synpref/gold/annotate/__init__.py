"""The annotation page: a small FastAPI app that shows queued pairs to signed-in annotators and
journals their labels durably (`synpref annotate serve`)."""
