"""Training the prompt classifier's head: the corpus, noise augmentation, leave-one-source-out calibration.

Run `python -m detectors.training.prompt_head` (see that module). Nothing here is imported when prompts are
checked; the runtime side is `detectors.prompt_classifier`.
"""
