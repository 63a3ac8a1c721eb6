/* classify_digits: classify stored handwritten digits with the generated int8 engine.
 *
 * model.h/model.c (the network) and test_samples.h (quantized digits with their true
 * labels) come from denselab; see README.md. Build and run on a PC with `make run`;
 * on a microcontroller, copy model.h and model.c into the firmware and call model_invoke.
 */
#include <stdio.h>

#include "model.h"
#include "test_samples.h"

#if TEST_SAMPLES_INPUT_SIZE != MODEL_INPUT_SIZE
#error "test_samples.h was not made for this model"
#endif

/* The class with the highest score; the first one on a tie. */
static int argmax(const int8_t *scores, int n)
{
    int best = 0;
    int i;
    for (i = 1; i < n; i++) {
        if (scores[i] > scores[best]) {
            best = i;
        }
    }
    return best;
}

int main(void)
{
    int8_t output[MODEL_OUTPUT_SIZE];
    int correct = 0;
    int i;

    for (i = 0; i < TEST_SAMPLES_COUNT; i++) {
        int predicted;
        model_invoke(test_samples_inputs[i], output);
        predicted = argmax(output, MODEL_OUTPUT_SIZE);
        correct += predicted == test_samples_labels[i];
        printf("digit %2d: predicted %d, true %d (probability %.2f)%s\n", i, predicted,
               test_samples_labels[i],
               MODEL_OUTPUT_SCALE * (output[predicted] - MODEL_OUTPUT_ZERO_POINT),
               predicted == test_samples_labels[i] ? "" : "  <- wrong");
    }
    printf("%d of %d correct\n", correct, TEST_SAMPLES_COUNT);
    return 0;
}
