"""Applications built on the core: the demo, seed studies, run reports, the parameter audit,
the MIT-Adobe FiveK preparation and the web page (``uegan serve``)."""
