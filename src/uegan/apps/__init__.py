"""Applications built on the core: the demo, seed studies, run reports, the parameter audit
and the MIT-Adobe FiveK preparation."""
