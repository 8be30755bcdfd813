"""The adversarial kit shared by GAN, CycleGAN and StackGAN: losses on logits of any shape
(:mod:`~genlab.adversarial.losses`), the stabilising tricks (:mod:`~genlab.adversarial.tricks`) and
D-step / G-step helpers that apply them to any discriminator (:mod:`~genlab.adversarial.steps`)."""
