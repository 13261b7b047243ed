"""Offline jobs and the model lifecycle: what a person (the CLI) or the quality worker runs.

``lifecycle`` (register, promote after checks, demote, retire, rank, retrain, seed the
registry), ``replay`` (a model over archived traffic), ``retrain`` (a new version from the
archive joined with feedback), ``train`` (the demo's models), ``report`` (the HTML report),
``sample`` (the notebooks' data, in-process). They read the archive and the topics
(``tables/``) and carry out the domain's decisions (``pipelines/``).
"""
