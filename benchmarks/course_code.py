"""The course's code as written, on Keras 3 with the TensorFlow backend (the baseline).

Only what Keras 3 forces is changed: the dataset is read from disk (this machine is
offline) and ``model.predict([10.0])`` becomes ``model.predict(np.array([[10.0]]))``.
Prints one JSON line with per-epoch wall-clock times so the caller can measure time to
accuracy from its own process start.

    python benchmarks/course_code.py neuron
    python benchmarks/course_code.py classifier --dataset fashion-mnist --epochs 20
"""

import argparse
import json
import os
import time

os.environ["KERAS_BACKEND"] = "tensorflow"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def neuron(epochs: int) -> dict:
    import numpy as np
    import tensorflow as tf
    from tensorflow import keras

    my_layer = keras.layers.Dense(units=1, input_shape=[1])
    model = tf.keras.Sequential([my_layer])
    model.compile(optimizer="sgd", loss="mean_squared_error")

    xs = np.array([-1.0, 0.0, 1.0, 2.0, 3.0, 4.0], dtype=float)
    ys = np.array([-3.0, -1.0, 1.0, 3.0, 5.0, 7.0], dtype=float)

    started = time.perf_counter()
    model.fit(xs, ys, epochs=epochs)
    fit_seconds = time.perf_counter() - started
    prediction = float(model.predict(np.array([[10.0]]))[0][0])
    (w,), (b,) = (np.ravel(a) for a in my_layer.get_weights())
    return {"w": float(w), "b": float(b), "prediction": prediction, "fit_seconds": fit_seconds}


def classifier(dataset: str, epochs: int, verbose: str = "auto") -> dict:
    import tensorflow as tf

    from denselab.data import load_dataset

    data = load_dataset(dataset)  # the course: tf.keras.datasets.mnist.load_data() / 255.0
    (training_images, training_labels) = (data.x_train, data.y_train)
    (val_images, val_labels) = (data.x_test, data.y_test)

    model = tf.keras.models.Sequential(
        [
            tf.keras.layers.Flatten(input_shape=data.input_shape),
            tf.keras.layers.Dense(20, activation=tf.nn.relu),
            tf.keras.layers.Dense(10, activation=tf.nn.softmax),
        ]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    ends = []
    clock = tf.keras.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: ends.append(time.time()))
    history = model.fit(
        training_images,
        training_labels,
        epochs=epochs,
        validation_data=(val_images, val_labels),
        callbacks=[clock],  # only to read the clock
        verbose=verbose if verbose == "auto" else int(verbose),  # "auto": the course's default
    )
    return {
        "epoch_end_unix": ends,
        "val_accuracy": history.history["val_accuracy"],
        "train_accuracy": history.history["accuracy"][-1],
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("lesson", choices=["neuron", "classifier"])
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--verbose", default="auto", choices=["auto", "0", "1", "2"])
    args = parser.parse_args()
    if args.lesson == "neuron":
        result = neuron(args.epochs or 500)
    else:
        result = classifier(args.dataset, args.epochs or 20, args.verbose)
    print("RESULT " + json.dumps(result))
