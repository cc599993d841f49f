# make run   - set everything up and start the app (http://127.0.0.1:5000), with the starter
#              model fetched and loaded if the models folder is empty
# make test  - set everything up and run the whole test suite
.PHONY: run test lint bench

run:
	scripts/setup.sh
	.venv/bin/python main.py --starter

test:
	scripts/setup.sh dev
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/python -m pytest

bench:
	scripts/setup.sh dev
	.venv/bin/python bench/run.py
