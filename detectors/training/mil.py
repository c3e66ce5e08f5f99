"""Multiple-instance logistic regression: one linear scorer per label over a text's instances, soft-max pooled.

A text (a *bag*) is its sentence embedding plus its token windows (`detectors.prompt_classifier.instances`);
its raw score for a label is `logsumexp(tau * (X @ w + b)) / tau` over its instances. The loss is weighted
binary cross-entropy on the bag scores plus `l2 * |w|^2`, minimised with L-BFGS (scipy) from zero weights
(`fit`: deterministic, no GPU, no torch), or with a few epochs of Adam (`fit_adam`, measured, not
shipped). Instances of a bag are stored contiguously (`starts[i]` is bag i's first row), so pooling is
`np.*.reduceat`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy.optimize import minimize


@dataclass
class Bags:
    """Instances of many texts, stacked: rows `starts[i]:starts[i + 1]` belong to text i."""

    X: np.ndarray  # (instances, features) float32
    starts: np.ndarray  # (texts,) int64, increasing, starts[0] == 0

    def __len__(self) -> int:
        return len(self.starts)

    @property
    def sizes(self) -> np.ndarray:
        return np.diff(np.append(self.starts, len(self.X)))

    @cached_property
    def owner(self) -> np.ndarray:
        """(instances,): the text each instance belongs to (computed once: every optimiser step uses it)."""
        return np.repeat(np.arange(len(self)), self.sizes)

    def subset(self, index: np.ndarray) -> Bags:
        """The bags `index` (in that order)."""
        sizes = self.sizes[index]
        rows = np.concatenate(
            [np.arange(self.starts[i], self.starts[i] + n) for i, n in zip(index, sizes, strict=True)]
        )
        return Bags(self.X[rows], np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64))


def pooled(z: np.ndarray, bags: Bags, tau: float) -> tuple[np.ndarray, np.ndarray]:
    """Bag scores (texts, labels) and each instance's pooling weight (its softmax share within its bag)."""
    top = np.maximum.reduceat(z, bags.starts, axis=0)
    owner = bags.owner
    e = np.exp(tau * (z - top[owner]))
    total = np.add.reduceat(e, bags.starts, axis=0)
    return top + np.log(total) / tau, e / total[owner]


def fit(
    bags: Bags,
    targets: np.ndarray,
    weights: np.ndarray,
    *,
    l2: float,
    tau: float,
    max_iter: int = 200,
) -> tuple[np.ndarray, np.ndarray]:
    """Weights (features, labels) and biases (labels) minimising the weighted bag cross-entropy.

    `targets` (texts, labels) is 1 or 0; `weights` (texts, labels) is each text's weight for each label (0:
    the text does not count for that label, e.g. an unsafe text of another category).
    """
    features, labels = bags.X.shape[1], targets.shape[1]
    total = weights.sum(axis=0)
    total[total == 0] = 1.0
    owner = bags.owner
    X = np.ascontiguousarray(bags.X, dtype=np.float32)  # float64 in these products would copy X every call
    XT = np.ascontiguousarray(X.T)  # a transposed view multiplies several times slower

    def loss_and_grad(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w = theta[: features * labels].reshape(features, labels)
        b = theta[features * labels :]
        z = X @ w.astype(np.float32) + b.astype(np.float32)
        s, share = pooled(z, bags, tau)
        s = s.astype(np.float64)
        # log(1 + e^s) - t * s, stably
        loss = (np.logaddexp(0.0, s) - targets * s) * weights / total
        d_s = (1.0 / (1.0 + np.exp(-s)) - targets) * weights / total
        d_z = (d_s[owner] * share).astype(np.float32)
        grad_w = (XT @ d_z).astype(np.float64) + 2 * l2 * w
        grad_b = d_z.sum(axis=0)
        value = float(loss.sum() + l2 * (w**2).sum())
        return value, np.concatenate([grad_w.ravel(), grad_b]).astype(np.float64)

    theta0 = np.zeros(features * labels + labels)
    theta0[features * labels :] = -2.0
    # ftol 1e-7: the loss is flat well before scipy's default tolerance, and each step reads every instance
    result = minimize(loss_and_grad, theta0, jac=True, method="L-BFGS-B", options={"maxiter": max_iter, "ftol": 1e-7})
    theta = result.x
    return theta[: features * labels].reshape(features, labels).astype(np.float32), theta[features * labels :].astype(
        np.float32
    )


def fit_adam(
    bags: Bags,
    targets: np.ndarray,
    weights: np.ndarray,
    *,
    l2: float,
    tau: float,
    epochs: int = 4,
    batch: int = 64,
    lr: float = 1e-2,
    scale: float = 5.0,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """The same model fitted the other way: Adam on shuffled batches of texts for a few epochs, the loss on
    `scale` times the bag score (a sharper sigmoid; the calibration absorbs it), stopped early rather than
    run to the minimum. Deterministic for a given `seed`."""
    rng = np.random.default_rng(seed)
    features, labels = bags.X.shape[1], targets.shape[1]
    params = [np.zeros((features, labels), np.float32), np.zeros(labels, np.float32)]
    first = [np.zeros_like(p) for p in params]
    second = [np.zeros_like(p) for p in params]
    step = 0
    for _ in range(epochs):
        order = rng.permutation(len(bags))
        for begin in range(0, len(order), batch):
            index = np.sort(order[begin : begin + batch])
            part = bags.subset(index)
            w, b = params
            s, share = pooled(part.X @ w + b, part, tau)
            d_s = scale * (1.0 / (1.0 + np.exp(-scale * s)) - targets[index]) * weights[index] / len(index)
            d_z = (d_s[part.owner] * share).astype(np.float32)
            grads = [part.X.T @ d_z + 2 * l2 * w, d_z.sum(axis=0)]
            step += 1
            for p, g, m, v in zip(params, grads, first, second, strict=True):
                m *= 0.9
                m += 0.1 * g
                v *= 0.999
                v += 0.001 * g * g
                p -= lr * (m / (1 - 0.9**step)) / (np.sqrt(v / (1 - 0.999**step)) + 1e-8)
    return params[0], params[1]


def scores(bags: Bags, w: np.ndarray, b: np.ndarray, tau: float) -> np.ndarray:
    """Raw bag scores (texts, labels)."""
    return pooled(bags.X @ w.astype(np.float32) + b.astype(np.float32), bags, tau)[0]


def platt(raw: np.ndarray, target: np.ndarray, weight: np.ndarray) -> tuple[float, float]:
    """(a, b) of the logistic map sigmoid(a * raw + b) fitted to held-out scores (weighted cross-entropy)."""
    total = max(float(weight.sum()), 1e-12)

    def loss_and_grad(theta: np.ndarray) -> tuple[float, np.ndarray]:
        s = theta[0] * raw + theta[1]
        loss = float(((np.logaddexp(0.0, s) - target * s) * weight).sum() / total)
        d = (1.0 / (1.0 + np.exp(-s)) - target) * weight / total
        return loss, np.array([(d * raw).sum(), d.sum()])

    result = minimize(loss_and_grad, np.array([1.0, 0.0]), jac=True, method="L-BFGS-B")
    return float(result.x[0]), float(result.x[1])
