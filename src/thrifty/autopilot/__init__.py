"""The autopilot: thrifty trains its own local students from its traffic, and proves each step.

Per task (requests that share a system prompt, optionally per tenant), one run is one cycle:

    collect   the task's captured cloud answers (masked; every row checked for personal data)
    dataset   dedupe, filter, held-out split (`thrifty.train.collect`)
    finetune  LoRA on the current local base (`thrifty.train.trainer`)
    export    a LoRA GGUF served on the base's engine, or a merged GGUF (`thrifty.train.export`),
              added to the model registry under the candidate's name
    gate      held-out score against the current model and the cloud's answers, and other
              tasks' examples for regressions; a failing gate ends the run (the candidate goes)
    register  the candidate is recorded; live traffic captured from now on is its test
    shadow    new live requests of the task answered again by the candidate and the current
              model, scored on the gate's metric, stored as outcomes (source ``shadow``)
    decide    two-sided test (`thrifty.stats`, alpha 0.05): promote (a routing rule for the
              task's `auto` traffic, `thrifty.gateway.promoted`) or roll back
    retrain   refit the learned router scorer from the outcomes

Every step is recorded in the store (`thrifty.store.autopilot`) before and after it runs; a run
cut short continues from its first step that is not done. The gateway never imports this package:
`thrifty serve` starts the optional scheduler (`autopilot.enabled`), which runs cycles in a child
process.
"""

from thrifty.autopilot.cycle import STEPS, Cycle, CycleReport, plan

__all__ = ["STEPS", "Cycle", "CycleReport", "plan"]
