"""The training loop of a dense network, written out in JAX with Keras's arithmetic.

Lesson 1's loop (guess, measure the loss, take the gradient, step) for a chain of ``Dense``
layers: the forward pass as ``Dense.call`` computes it, sparse categorical cross-entropy (or
mean squared error) as Keras computes it, Adam or SGD with ``CosineDecay`` as Keras updates,
the optimizer's moving average of the weights (``use_ema``) put in place at each epoch's end,
and the running means Keras's metrics keep. One compiled call runs a block of steps (a
``lax.scan``) while Python gathers the next block of shuffled rows on the other core.

Why not ``model.fit``: Keras must be imported (~0.5 s after JAX) and its layers traced
(~0.4 s) before the first step, and ``fit`` calls its compiled step once per batch from
Python. This loop needs only JAX, so ``denselab train`` starts training before Keras is
imported (Keras imports on another thread during the last epochs), and the weights go into
the Keras model at the end (:mod:`denselab.fitting` carries them). It imports neither Keras
nor TensorFlow. Nothing here is a new method, and ``tests/test_fast_training.py`` holds it to
Keras: in Keras's layout (``transposed=False``) it computes what ``fit`` computes, the same
float32 weights and Adam moments bit for bit, and a changed constant would show.

Layout: each weight (in ``get_weights()`` order) and each of Adam's moments travels as a 1-D
float32 vector; the layers read reshaped views. XLA vectorizes an elementwise update along
the last axis, and a (784, 20) kernel's is only 20 long: its Adam update ran scalar, about
2.5x slower. (One vector for all the weights is slower again: the gradient is then assembled
from padded pieces at every step.) By default each kernel is also kept transposed, (units,
inputs), so that both products of a step, ``x @ kernel`` and the kernel's gradient, run along
the 784 inputs rather than the 20 units: the lesson's epoch takes about half the time. The
arithmetic is the same; only the order in which the products' sums are added differs, so the
weights agree with Keras's to float32 rounding (tested) rather than bit for bit.
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass, field

import numpy as np

from .errors import DenselabError
from .model.network import ACTIVATIONS  # what build_model builds

EPSILON = 1e-7  # keras.config.epsilon(): the clip in the loss, and Adam's default epsilon
BETA_1, BETA_2 = 0.9, 0.999  # Adam's defaults


@dataclass(frozen=True)
class Recipe:
    """What one training computes: the network, the loss, the optimizer and its schedule.

    Every field is a plain number or name: together they are the compiled program's identity
    (and its key in JAX's compile cache).
    """

    n_inputs: int
    units: tuple[int, ...]
    activations: tuple[str, ...]
    classify: bool  # sparse categorical cross-entropy and accuracy; else MSE and MAE
    optimizer: str = "adam"  # "adam" or "sgd" (Keras's defaults otherwise)
    learning_rate: float = 1e-3  # the peak, with the cosine schedule
    schedule: str = "constant"  # or "cosine": CosineDecay(learning_rate, decay_steps)
    decay_steps: int = 1
    ema_momentum: float = 0.0  # the optimizer's use_ema (0: off), with Keras's names
    ema_overwrite_frequency: int = 0  # steps between overwrites of the weights by the average

    def __post_init__(self):
        unknown = [a for a in self.activations if a not in ACTIVATIONS]
        if unknown or len(self.units) != len(self.activations):
            raise DenselabError(f"no compiled training for activations {list(self.activations)}")
        if self.optimizer not in ("adam", "sgd") or self.schedule not in ("cosine", "constant"):
            raise DenselabError(f"no compiled training for {self.optimizer}/{self.schedule}")
        if self.ema_momentum and self.ema_overwrite_frequency < 1:
            raise DenselabError("no compiled training for an average that is never put in place")

    @property
    def shapes(self) -> list[tuple[int, ...]]:
        """The weights' shapes in ``get_weights()`` order: kernel, bias, kernel, bias, ..."""
        sizes = (self.n_inputs, *self.units)
        pairs = zip(sizes[:-1], sizes[1:], strict=True)
        return [s for n_in, n_out in pairs for s in ((n_in, n_out), (n_out,))]


@dataclass
class State:
    """What training carries from step to step, as NumPy: the weights (``get_weights()``
    order), the optimizer's step count, Adam's moments (one per weight; empty for SGD or
    before the first step) and the weights' moving averages (empty without ``use_ema``)."""

    weights: list[np.ndarray]
    iterations: int = 0
    momentums: list[np.ndarray] = field(default_factory=list)
    velocities: list[np.ndarray] = field(default_factory=list)
    averages: list[np.ndarray] = field(default_factory=list)

    def __repr__(self) -> str:
        shapes = ", ".join(str(w.shape) for w in self.weights)
        return f"State(weights [{shapes}], iterations {self.iterations})"


def initial_weights(n_inputs: int, units: list[int], seed: int) -> list[np.ndarray]:
    """The weights :func:`denselab.model.build_model` starts from, drawn without Keras: layer
    ``i``'s kernel from ``GlorotUniform(seed + i)``, its bias zeros.

    On JAX, Keras draws the kernel with ``jax.random.uniform`` from the key
    ``[seed + i, 0]``. That is arithmetic on 32-bit integers (Threefry-2x32, below), cheap in
    NumPy, while compiling it as a JAX program takes 0.06-0.1 s before the first epoch can
    start. ``tests/test_fast_training.py`` checks these weights bit for bit against both
    ``jax.random.uniform`` and Keras's own.
    """
    sizes = (n_inputs, *units)
    fans = tuple(zip(sizes[:-1], sizes[1:], strict=True))
    if not 0 <= seed <= 2**32 - len(fans):  # Keras draws from the uint32 key [seed + i, 0]
        raise DenselabError(f"seed {seed}: each layer's seed must fit in 32 bits")
    weights = []
    for i, (fan_in, fan_out) in enumerate(fans):
        limit = math.sqrt(3.0 * (1.0 / max(1.0, (fan_in + fan_out) / 2.0)))  # VarianceScaling
        kernel = uniform((seed + i, 0), (fan_in, fan_out), -limit, limit)
        weights += [kernel, np.zeros(fan_out, np.float32)]
    return weights


def uniform(key: tuple[int, int], shape: tuple[int, ...], minval: float, maxval: float):
    """``jax.random.uniform(key, shape, "float32", minval, maxval)`` for a raw Threefry key
    (JAX's default: ``jax_threefry_partitionable``), computed in NumPy.

    Element ``n`` (in C order) takes 32 random bits: Threefry-2x32 of the counter ``n`` (as two
    32-bit words, high and low) under the key, the two output words XOR-ed. Their top 23 bits
    become the mantissa of a float in [1, 2); minus 1 it is in [0, 1), then scaled to
    [minval, maxval). XLA computes ``floats * (maxval - minval) + minval`` as one fused
    multiply-add (a single rounding) on CPUs that have one, as every x86-64 since 2013 and
    every 64-bit Arm do; in float64 the product and sum are exact, so rounding once to
    float32 gives the same bits. Where JAX is set to its older counter layout
    (``jax_threefry_partitionable`` off), JAX draws instead.
    """
    if not _partitionable():
        import jax

        drawn = jax.random.uniform(np.array(key, np.uint32), shape, "float32", minval, maxval)
        return np.asarray(drawn)
    count = np.arange(math.prod(shape), dtype=np.uint64)
    high, low = (count >> np.uint64(32)).astype(np.uint32), count.astype(np.uint32)
    words = _threefry_2x32(np.uint32(key[0]), np.uint32(key[1]), high, low)
    bits = (words[0] ^ words[1]).reshape(shape)
    floats = ((bits >> np.uint32(9)) | np.uint32(0x3F800000)).view(np.float32) - np.float32(1)
    low_end, high_end = np.float32(minval), np.float32(maxval)
    scaled = floats.astype(np.float64) * np.float64(high_end - low_end) + np.float64(low_end)
    return np.maximum(low_end, scaled.astype(np.float32))


def _partitionable() -> bool:
    """Whether JAX draws random bits with its partitionable counters (its default since 0.5;
    ``JAX_THREEFRY_PARTITIONABLE=0`` or the config flag turns it off)."""
    jax = sys.modules.get("jax")
    if jax is not None:
        return bool(jax.config.jax_threefry_partitionable)
    return os.environ.get("JAX_THREEFRY_PARTITIONABLE", "1").lower() not in ("0", "false")


def _threefry_2x32(key_1, key_2, x_1, x_2) -> tuple:
    """The Threefry-2x32 block cipher (Salmon et al., 2011) with 20 rounds, as JAX's
    ``threefry2x32`` primitive computes it: uint32 arithmetic, wrapping."""
    u32 = np.uint32
    keys = (key_1, key_2, key_1 ^ key_2 ^ u32(0x1BD11BDA))
    rotations = ((13, 15, 26, 6), (17, 29, 16, 24))
    x_1, x_2 = x_1 + keys[0], x_2 + keys[1]
    for i in range(5):  # five groups of four rounds, a key injection after each group
        for r in rotations[i % 2]:
            x_1 = x_1 + x_2
            x_2 = x_1 ^ ((x_2 << u32(r)) | (x_2 >> u32(32 - r)))
        x_1, x_2 = x_1 + keys[(i + 1) % 3], x_2 + keys[(i + 2) % 3] + u32(i + 1)
    return x_1, x_2


BLOCK_BYTES = 16 << 20  # one compiled call's inputs as float32 (a quarter as bytes): 15 an epoch


class CompiledEpochs:
    """Train from ``start`` an epoch at a time, as ``model.fit`` does (shuffled each epoch
    with ``np.random.permutation``, the test split scored after each epoch as one batch).

    x_train : (n_samples, n_inputs) float32 (None with ``pixels``); y_train : labels
    (n_samples,) or targets;
    ``transposed`` the kernels' layout (see the module's notes; False: Keras's, bit-exact);
    ``pixels`` x_train as bytes (:class:`denselab.data.Pixels`), when it is images of bytes:
    the blocks are then a quarter of the size, and an epoch of the lesson about 12% shorter.

    Each compiled call trains on a block of shuffled rows (up to :data:`BLOCK_BYTES` of
    inputs), which Python gathers on the other core while the call before it computes.
    (Gathering each batch inside the compiled call instead, from a copy of the whole split,
    left Python nothing to do but made each epoch about 15% slower.)
    """

    def __init__(
        self, recipe, start, x_train, y_train, validation, batch_size, transposed=True, pixels=None
    ):
        import jax

        self.recipe, self.batch_size, self.transposed = recipe, batch_size, transposed
        if pixels is None:
            self._x = np.asarray(x_train, np.float32).reshape(len(x_train), -1)
            self._values = None
        else:  # the blocks travel as bytes, and the program looks their values up
            self._x = np.asarray(pixels.codes, np.uint8).reshape(len(pixels.codes), -1)
            self._values = np.asarray(pixels.values, np.float32)
        self._y = np.asarray(y_train, np.int32 if recipe.classify else np.float32)
        x_val, y_val = validation
        self._x_val = jax.device_put(np.asarray(x_val, np.float32).reshape(len(x_val), -1))
        self._y_val = jax.device_put(np.asarray(y_val, self._y.dtype))
        self.steps_per_call = max(1, BLOCK_BYTES // (batch_size * self._x.shape[1] * 4))
        self._shapes = [s[::-1] if transposed else s for s in recipe.shapes]  # as carried
        # on the device already, as every call's results are: all calls pass the same kinds
        self._start = jax.device_put(_carried(start, recipe.shapes, recipe.optimizer, transposed))
        self._zeros = jax.device_put(np.zeros(4, np.float32))
        self.predictions = None  # the test split's outputs after the last finished epoch
        self._train = jax.jit(self._train_steps)
        self._validate = jax.jit(self._test_batch)

    def __repr__(self) -> str:
        return (
            f"CompiledEpochs({len(self._x)} samples, batch {self.batch_size}, "
            f"{self.steps_per_call} steps per call)"
        )

    def start_epoch(self, after: tuple | None = None) -> tuple:
        """Queue one epoch's training, then its validation, and return at once (they run while
        Python goes on); ``after`` is an epoch started before and not yet finished, to train on
        from its end. :meth:`finish_epoch` waits for the result."""
        carried = self._start if after is None else after[2]
        metrics = self._zeros  # loss total, count; metric total, count
        order = np.random.permutation(len(self._x))
        for block in _blocks(order, self.batch_size, self.steps_per_call):
            carried, metrics = self._train(
                carried, metrics, self._x[block], self._y[block], self._values
            )
        scored = self._validate(carried[0], self._x_val, self._y_val)
        return metrics, scored, carried

    def finish_epoch(self, started: tuple) -> tuple[dict, State]:
        """Wait for an epoch :meth:`start_epoch` queued: its logs (as ``fit``'s) and the
        state at its end."""
        metrics, (val_loss, val_metric, predictions), carried = started
        metrics = np.asarray(metrics, np.float64)
        name = "accuracy" if self.recipe.classify else "mae"
        logs = {
            "loss": float(metrics[0] / metrics[1]),
            name: float(metrics[2] / metrics[3]),
            "val_loss": float(val_loss),
            f"val_{name}": float(val_metric),
        }
        self.predictions = predictions
        state = _state(carried, self._shapes, self.transposed)
        if self.recipe.optimizer != "adam":  # SGD carries no moments (zeros in the program)
            state.momentums, state.velocities = [], []
        if not self.recipe.ema_momentum:  # nor an optimizer without use_ema averages
            state.averages = []
        return logs, state

    def _train_steps(self, carried, metrics, x, y, values):
        """Keras's train step on each batch of ``x`` (steps, batch, n_inputs) in turn; the
        state and the metrics' totals after the last. With ``values``, ``x`` holds bytes and
        ``values[x]`` the inputs (a lookup, not ``x / 255``: XLA's division on the CPU is not
        always correctly rounded, and the inputs must be the very floats Keras is given)."""
        import jax
        import jax.numpy as jnp

        recipe = self.recipe

        def loss_of(flat, x, y):
            outputs = _forward(recipe, _shaped(flat, self._shapes), x, self.transposed)
            return jnp.sum(_losses(recipe, y, outputs)) / len(x), outputs  # sum_over_batch_size

        def step(state, batch):
            (flat, iterations, momentum, velocity, average), totals = state
            x, y = batch
            if values is not None:
                x = values[x]
            (loss, outputs), gradient = jax.value_and_grad(loss_of, has_aux=True)(flat, x, y)
            updated = [
                _update(recipe, *each, iterations)
                for each in zip(flat, gradient, momentum, velocity, strict=True)
            ]
            flat, momentum, velocity = (list(values) for values in zip(*updated, strict=True))
            if recipe.ema_momentum:
                average = _moving_average(recipe, flat, average, iterations)
            n = jnp.float32(len(x))
            metric = jnp.sum(_metric(recipe, y, outputs))
            totals = totals + jnp.stack([loss * n, n, metric, n])  # Keras's Mean metrics
            return ((flat, iterations + 1, momentum, velocity, average), totals), None

        (carried, metrics), _ = jax.lax.scan(step, (carried, metrics), (x, y))
        if recipe.ema_momentum:
            carried = _put_average_in_place(recipe, carried)
        return carried, metrics

    def _test_batch(self, flat, x, y):
        import jax.numpy as jnp

        recipe = self.recipe
        outputs = _forward(recipe, _shaped(flat, self._shapes), x, self.transposed)
        loss = jnp.sum(_losses(recipe, y, outputs)) / len(x)
        return loss, jnp.sum(_metric(recipe, y, outputs)) / len(x), outputs


def _forward(recipe: Recipe, weights: list, x, transposed: bool):
    """``Dense.call`` layer by layer: ``activation(x @ kernel + bias)`` (with a transposed
    kernel, (units, inputs): ``x @ kernel.T``)."""
    import jax
    import jax.numpy as jnp

    functions = {
        "linear": lambda z: z,
        "relu": jax.nn.relu,
        "sigmoid": jax.nn.sigmoid,
        "tanh": jnp.tanh,
        "softmax": lambda z: jax.nn.softmax(z, axis=-1),
    }
    for index, activation in enumerate(recipe.activations):
        kernel, bias = weights[2 * index], weights[2 * index + 1]
        x = functions[activation](jnp.add(jnp.matmul(x, kernel.T if transposed else kernel), bias))
    return x


def _losses(recipe: Recipe, y, outputs):
    """Per-sample loss, as ``keras.losses``: sparse categorical cross-entropy on the softmax's
    probabilities (normalized, clipped to [1e-7, 1 - 1e-7], logged), or mean squared error."""
    import jax
    import jax.numpy as jnp

    if recipe.classify:
        p = outputs / jnp.sum(outputs, -1, keepdims=True)
        log_p = jnp.log(jnp.clip(p, EPSILON, 1.0 - EPSILON))
        return -jnp.sum(jax.nn.one_hot(y, outputs.shape[-1], axis=-1) * log_p, axis=-1)
    return jnp.mean(jnp.square(_as_outputs(y, outputs) - outputs), axis=-1)


def _metric(recipe: Recipe, y, outputs):
    """Per-sample ``accuracy`` (argmax equals the label) or ``mae``."""
    import jax.numpy as jnp

    if recipe.classify:
        return jnp.equal(y, jnp.argmax(outputs, axis=-1).astype(y.dtype)).astype("float32")
    return jnp.mean(jnp.abs(_as_outputs(y, outputs) - outputs), axis=-1)


def _as_outputs(y, outputs):
    """Targets of shape (n,) against outputs (n, 1): Keras expands them to the same rank."""
    return y[:, None] if y.ndim == outputs.ndim - 1 else y


def _update(recipe: Recipe, flat, gradient, momentum, velocity, iterations):
    """One optimizer step on one (flat) weight, as ``Adam.update_step`` / ``SGD.update_step``
    with the learning rate the schedule gives at ``iterations``."""
    import jax.numpy as jnp

    f32 = jnp.float32
    lr = f32(recipe.learning_rate)
    if recipe.schedule == "cosine":  # CosineDecay(learning_rate, decay_steps), alpha 0
        decay_steps = f32(recipe.decay_steps)
        fraction = jnp.minimum(iterations.astype(f32), decay_steps) / decay_steps
        lr = lr * ((1 - 0.0) * (0.5 * (1.0 + jnp.cos(f32(math.pi) * fraction))) + 0.0)
    if recipe.optimizer == "sgd":
        return flat - gradient * lr, momentum, velocity
    local_step = (iterations + 1).astype(f32)
    alpha = lr * jnp.sqrt(1 - f32(BETA_2) ** local_step) / (1 - f32(BETA_1) ** local_step)
    momentum = momentum + (gradient - momentum) * (1 - BETA_1)
    velocity = velocity + (jnp.square(gradient) - velocity) * (1 - BETA_2)
    return flat - (momentum * alpha) / (jnp.sqrt(velocity) + EPSILON), momentum, velocity


def _moving_average(recipe: Recipe, flat: list, average: list, iterations) -> list:
    """The optimizer's ``use_ema`` after a step, as Keras's JAX backend computes it: each
    weight's moving average, ``momentum * average + (1 - momentum) * weight`` (the momentum
    0 at the first step, so the average starts at the weights)."""
    import jax.numpy as jnp

    f32 = jnp.float32
    momentum = jnp.not_equal(iterations, 0).astype(f32) * f32(recipe.ema_momentum)
    return [momentum * a + (1 - momentum) * w for a, w in zip(average, flat, strict=True)]


def _put_average_in_place(recipe: Recipe, carried: tuple) -> tuple:
    """Keras's ``ema_overwrite_frequency``: the weights replaced by their averages after every
    so many steps (denselab: each epoch's, so the model scored after an epoch, and the one
    saved, holds the averages). Keras checks after each step; this, after a compiled call's
    last step only, which is the same: a call's steps never cross an epoch's end."""
    import jax.numpy as jnp

    flat, iterations, momentum, velocity, average = carried
    f32 = jnp.float32
    overwrite = iterations % recipe.ema_overwrite_frequency == 0  # counted after the step
    keep, replace = jnp.logical_not(overwrite).astype(f32), overwrite.astype(f32)
    flat = [a * replace + w * keep for a, w in zip(average, flat, strict=True)]
    return flat, iterations, momentum, velocity, average


def _shaped(flat: list, shapes: list[tuple]) -> list:
    """The 1-D weights as arrays of ``shapes`` (views, no copy)."""
    return [value.reshape(shape) for value, shape in zip(flat, shapes, strict=True)]


def _carried(state: State, shapes: list[tuple], optimizer: str, transposed: bool) -> tuple:
    """A :class:`State` as the program carries it: 1-D weights (kernels transposed first, if
    so), step count, 1-D moments (as NumPy: the first call copies them in)."""
    if [tuple(np.shape(w)) for w in state.weights] != list(shapes):
        raise DenselabError("the weights do not fit the network being trained")

    def flat(arrays):
        if not arrays:  # a fresh optimizer: zeros
            return [np.zeros(int(np.prod(shape)), np.float32) for shape in shapes]
        arrays = [np.asarray(a, np.float32) for a in arrays]
        return [np.ravel(a.T if transposed else a) for a in arrays]

    moments = (state.momentums, state.velocities) if optimizer == "adam" else ([], [])
    return (
        flat(state.weights),
        np.int32(state.iterations),
        flat(moments[0]),
        flat(moments[1]),
        flat(state.averages),  # zeros when there are none: the first step's momentum is 0
    )


def _state(carried: tuple, shapes: list[tuple], transposed: bool) -> State:
    """The program's state (arrays of the carried ``shapes``) as NumPy, in Keras's layout."""
    weights, iterations, momentums, velocities, averages = carried

    def as_keras(values):
        arrays = _shaped([np.asarray(v) for v in values], shapes)  # NumPy's reshape, not a
        # JAX program compiled (~20 ms each) while the first epoch's result waits to be shown
        return [np.ascontiguousarray(a.T) for a in arrays] if transposed else arrays

    return State(
        as_keras(weights),
        int(iterations),
        as_keras(momentums),
        as_keras(velocities),
        as_keras(averages),
    )


def _blocks(order: np.ndarray, batch_size: int, most: int):
    """``order`` cut into index blocks of shape (steps, batch_size), at most ``most`` steps a
    block, then the last, shorter batch (as ``fit`` takes it).

    Each block shape is a program XLA compiles (about a second, once; then from the disk
    cache), so the steps are split evenly when a divisor of an epoch's steps is at least a
    quarter of ``most`` (60,000 images in batches of 32: 15 blocks of 125); else blocks of
    ``most`` and one of the steps left over.
    """
    n_steps = len(order) // batch_size
    batches = order[: n_steps * batch_size].reshape(n_steps, batch_size)
    most = min(most, n_steps)
    steps = max([k for k in range(1, most + 1) if n_steps % k == 0], default=1)
    if steps < most // 4:
        steps = most
    for start in range(0, n_steps, steps):
        yield batches[start : start + steps]
    if len(order) % batch_size:
        yield order[n_steps * batch_size :][None]
