"""Operator coverage measured against PyTorch's OpInfo database.

- cases.py: OpInfo sample inputs as compile cases (one op applied to one
  sample), the module that applies them, OpInfo's tolerances.
- check.py: compiles a group of cases into one package, runs it through the
  C++ runtime and compares each case with eager; failures are bisected down
  to the single case.
- sweep.py: many groups over worker processes (a crash or a hang costs one
  case, never the sweep).
- report.py: exclusions (docs/op_exclusions.md), the named op families, the
  markdown and JSON reports.

scripts/op_coverage.py is the command line; tests/test_op_coverage.py runs a
fixed sample. Needs torch's test extras (``pip install expecttest``) for
torch.testing._internal.
"""
