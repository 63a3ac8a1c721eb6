"""Training epochs for Keras's JAX backend, many steps per compiled call.

Keras's ``fit`` on JAX runs its compiled step once per batch from Python. Here one call runs
``steps_per_execution`` steps (a ``lax.scan`` over a block of batches) while Python gathers the
next block of shuffled rows on the other core; the shuffling is ``fit``'s
(``np.random.permutation`` each epoch). Each step is Keras's ``train_step`` (its layers, loss,
metrics and optimizer), with one change in how the optimizer's arithmetic is laid out: it
runs on 1-D views of the variables. XLA vectorizes an elementwise update along the last axis,
and a (784, 20) kernel's last axis is only 20 long: its Adam update ran scalar, about 2.5x
slower, and was a quarter of each step.
"""

from __future__ import annotations

import numpy as np


class CompiledEpochs:
    """Train ``model`` (compiled, JAX backend) an epoch at a time, as ``model.fit`` does.

    x_train : (n_samples, *input_shape); y_train : (n_samples,); ``validation`` the pair
    scored after each epoch, as one batch. After every epoch the model's variables hold the
    new weights, optimizer state and metrics.
    """

    def __init__(self, model, x_train, y_train, validation, batch_size: int, steps: int):
        import jax
        import jax.numpy as jnp

        self.model, self.batch_size, self.steps_per_execution = model, batch_size, max(1, steps)
        self._x, self._y = np.asarray(x_train), np.asarray(y_train)
        model._symbolic_build(data_batch=(self._x[:batch_size], self._y[:batch_size]))
        if not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        self._optimizer = _FlatOptimizer(model.optimizer, model.trainable_variables)
        model.reset_metrics()
        self._fresh_metrics = [v.value for v in model.metrics_variables]  # zeros, each epoch
        self._x_val, self._y_val = (jnp.asarray(a) for a in validation)
        self._train = jax.jit(self._train_steps)
        self._validate = jax.jit(self._test_batch)

    def __repr__(self) -> str:
        return (
            f"CompiledEpochs({len(self._x)} samples, batch {self.batch_size}, "
            f"{self.steps_per_execution} steps per call)"
        )

    def start_epoch(self, after: tuple | None = None) -> tuple:
        """Queue one epoch's training, then its validation, and return at once (they run while
        Python goes on); ``after`` is an epoch started before and not yet finished, to train on
        from its end. :meth:`finish_epoch` waits for the result."""
        model = self.model
        if after is None:
            state = (
                [v.value for v in model.trainable_variables],
                [v.value for v in model.non_trainable_variables],
                [v.value for v in model.optimizer.variables],
                self._fresh_metrics,
            )
        else:
            trainable, non_trainable, optimizer_state, _ = after[2]
            state = (trainable, non_trainable, optimizer_state, self._fresh_metrics)
        order = np.random.permutation(len(self._x))
        for block in _blocks(order, self.batch_size, self.steps_per_execution):
            logs, state = self._train(state, self._x[block], self._y[block])
        scored = (state[0], state[1], self._fresh_metrics)
        val_logs, _ = self._validate(scored, self._x_val, self._y_val)
        return logs, val_logs, state

    def finish_epoch(self, started: tuple) -> dict:
        """Wait for an epoch :meth:`start_epoch` queued and put its end into the model's
        variables (weights, optimizer state, metrics); its logs, as ``fit``'s."""
        logs, val_logs, state = started
        model = self.model
        every = (
            model.trainable_variables,
            model.non_trainable_variables,
            model.optimizer.variables,
            model.metrics_variables,
        )
        for variables, values in zip(every, state, strict=True):
            for variable, value in zip(variables, values, strict=True):
                variable.assign(value)
        logs = {key: float(value) for key, value in logs.items()}
        logs.update({f"val_{key}": float(value) for key, value in val_logs.items()})
        return logs

    def _train_steps(self, state, x, y):
        """Keras's ``train_step`` on each batch of ``x`` (steps, batch, ...) in turn; the logs
        after the last (the metrics so far this epoch) and the final state."""
        import jax

        model, flat = self.model, self._optimizer
        loss_and_grads = jax.value_and_grad(model.compute_loss_and_updates, has_aux=True)

        def step(state, batch):  # the weights and optimizer state travel flat (see _FlatOptimizer)
            flat_trainable, non_trainable, flat_state, metrics = state
            x, y = batch
            (_, aux), grads = loss_and_grads(
                flat.shaped(flat_trainable, flat.shapes),
                non_trainable,
                metrics,
                x,
                y,
                None,
                training=True,
                optimizer_variables=flat.shaped(flat_state, flat.state_shapes),
            )
            loss, y_pred, non_trainable, metrics = aux
            flat_trainable, flat_state = flat.twin.stateless_apply(
                flat_state, [g.reshape(-1) for g in grads], flat_trainable
            )
            logs, metrics = model._update_metrics_variables(metrics, loss, x, y, y_pred, None)
            return (flat_trainable, non_trainable, flat_state, metrics), logs

        trainable, non_trainable, optimizer_state, metrics = state
        state = (flat.flat(trainable), non_trainable, flat.flat(optimizer_state), metrics)
        state, logs = jax.lax.scan(step, state, (x, y))
        flat_trainable, non_trainable, flat_state, metrics = state
        trainable = flat.shaped(flat_trainable, flat.shapes)
        state = (trainable, non_trainable, flat.shaped(flat_state, flat.state_shapes), metrics)
        return jax.tree_util.tree_map(lambda values: values[-1], logs), state

    def _test_batch(self, state, x, y):
        return self.model.test_step(state, (x, y))


def _blocks(order: np.ndarray, batch_size: int, most: int):
    """``order`` cut into index blocks of shape (steps, batch_size), at most ``most`` steps a
    block, then the last, shorter batch (as ``fit`` takes it).

    Each block shape is a program XLA compiles (about a second, once; then from the disk
    cache), so the steps are split evenly when a divisor of an epoch's steps is at least a
    quarter of ``most`` (60,000 images in batches of 32: 75 blocks of 25); else blocks of
    ``most`` and one of the steps left over.
    """
    n_steps = len(order) // batch_size
    batches = order[: n_steps * batch_size].reshape(n_steps, batch_size)
    steps = max([k for k in range(1, most + 1) if n_steps % k == 0], default=1)
    if steps < most // 4:
        steps = most
    for start in range(0, n_steps, steps):
        yield batches[start : start + steps]
    if len(order) % batch_size:
        yield order[n_steps * batch_size :][None]


class _FlatOptimizer:
    """A twin of ``optimizer`` (same class and config) built on 1-D variables: the same
    elementwise arithmetic on the same numbers, laid out so XLA vectorizes it. The training
    loop carries the weights and the optimizer state flat, and gives the layers shaped views.
    """

    def __init__(self, optimizer, trainable_variables):
        import keras

        from .backend import tensorflow_unprobed

        self.shapes = [tuple(v.shape) for v in trainable_variables]
        flat = [
            keras.Variable(np.zeros(int(np.prod(shape)), v.dtype), name=v.name)
            for v, shape in zip(trainable_variables, self.shapes, strict=True)
        ]
        with tensorflow_unprobed():  # a schedule in the config would import TensorFlow (~7 s)
            self.twin = type(optimizer).from_config(optimizer.get_config())
        self.twin.build(flat)
        self.state_shapes = [tuple(v.shape) for v in optimizer.variables]
        flat_shapes = [s if len(s) <= 1 else (int(np.prod(s)),) for s in self.state_shapes]
        if flat_shapes != [tuple(v.shape) for v in self.twin.variables]:
            raise RuntimeError(f"{type(optimizer).__name__}'s state does not flatten in order")

    def __repr__(self) -> str:
        return f"_FlatOptimizer({type(self.twin).__name__}, {len(self.shapes)} variables)"

    @staticmethod
    def flat(values: list) -> list:
        """Arrays as 1-D views (no copy); vectors and scalars (the step count) stay as they are."""
        return [value.reshape(-1) if value.ndim > 1 else value for value in values]

    @staticmethod
    def shaped(values: list, shapes: list) -> list:
        """Flat arrays back in ``shapes`` (views: no copy)."""
        return [value.reshape(shape) for value, shape in zip(values, shapes, strict=True)]
