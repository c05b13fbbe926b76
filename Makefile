# bnn2fpga: every target sets itself up (make setup is idempotent and fast when done).
SHELL := /bin/bash
VENV  ?= .venv
BIN   := $(VENV)/bin
MODEL ?= cbcnn
BOARD ?= pynq-z2
CKPT  ?=
FPS   ?=
OUT   ?= build/$(MODEL)-$(BOARD)
IMAGE ?= bnn2fpga:latest

ckpt_arg := $(if $(CKPT),--ckpt $(CKPT),)
fps_arg  := $(if $(FPS),--fps $(FPS),)

.PHONY: setup cluster-setup demo test bench bench-build-time bench-ecp5 calibrate bitstream estimate train verify models boards report \
        docker-image docker-bitstream docker-test lint-docker clean

setup:
	@scripts/install.sh $(VENV)

## The main job on an embedded default: train CBCNN on scikit-learn's digits, export,
## build for PYNQ-Z2 up to the estimates, verify bit-exactness, write the report.
demo: setup
	@$(BIN)/python -m bnn2fpga.flows.demo --out build/demo

test: setup
	@$(BIN)/python -m pytest -q $(PYTEST_ARGS)

## The optional cluster extra (Ray) for `bnn2fpga sweep`; the default install stays without it.
cluster-setup: setup
	@$(BIN)/python -m pip install --disable-pip-version-check --progress-bar off -q --no-deps \
	    -r requirements/cluster.txt

## README "Benchmarks": estimates, training, export, RTL and estimate vs Yosys per model (#18; build/bench,
## resumable); also the bring-your-own-BNN corpus models too slow for make test (pytest marker bench).
bench: setup
	@$(BIN)/python -m bnn2fpga.benchmarks.run --out build/bench $(if $(MODELS),--models $(MODELS),)
	@$(BIN)/python -m pytest -q -p no:cacheprovider -m bench tests/flows/byo

## Build time against graph size (issue #19): seconds per step to estimate, fitted exponent; GRAPHS=... to choose.
bench-build-time: setup
	@$(BIN)/python -m bnn2fpga.benchmarks.build_time --out build/bench-build-time $(if $(GRAPHS),--graphs $(GRAPHS),)

## Refit the resource model of our MVAU RTL to Yosys (hw/synth/resource_model.json, which the folding
## search reads): a sweep of layers through the Yosys cache, then the zoo's layers as the check. Minutes.
calibrate: setup
	@$(BIN)/python -m bnn2fpga.benchmarks.calibrate $(if $(MODELS),--zoo $(MODELS),)

## The open ECP5 flow measured (README "Open-source bitstream (ECP5)"): minutes per model.
bench-ecp5: setup
	@$(BIN)/python -m bnn2fpga.benchmarks.ecp5 --out build/bench-ecp5 --board $(if $(filter ulx3s%,$(BOARD)),$(BOARD),ulx3s-85f) $(if $(MODELS),--models $(MODELS),) $(fps_arg)

## Every step the machine's tools allow; without Vivado it stops after the estimates (exit 3).
## ECP5 boards (BOARD=ulx3s-85f) take the open flow instead: yosys, nextpnr-ecp5, ecppack.
bitstream: setup
	@$(BIN)/bnn2fpga build $(MODEL) $(ckpt_arg) --board $(BOARD) $(fps_arg) --out $(OUT)

estimate: setup
	@$(BIN)/bnn2fpga build $(MODEL) $(ckpt_arg) --board $(BOARD) $(fps_arg) --until package --out $(OUT)

train: setup
	@$(BIN)/bnn2fpga train $(MODEL) $(if $(DATA),--data $(DATA),) $(if $(DATASET),--dataset $(DATASET),) $(if $(EPOCHS),--epochs $(EPOCHS),)

verify: setup
	@$(BIN)/bnn2fpga verify $(MODEL) $(ckpt_arg) --board $(BOARD) --out $(OUT) $(if $(INPUTS),--inputs $(INPUTS),)

models: setup
	@$(BIN)/bnn2fpga models

boards: setup
	@$(BIN)/bnn2fpga boards

report: setup
	@$(BIN)/bnn2fpga report $(OUT)

docker-image:
	@scripts/docker.sh image $(IMAGE)

docker-bitstream:
	@scripts/docker.sh bitstream $(IMAGE) $(MODEL) $(BOARD) $(CKPT)

## Build the image here and run estimate, verify and bitstream in it (slow; not part of make test).
docker-test:
	@scripts/docker-test.sh

lint-docker: setup
	@$(BIN)/hadolint --failure-threshold warning Dockerfile && echo "Dockerfile: hadolint clean"

clean:
	rm -rf build
