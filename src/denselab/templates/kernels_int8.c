/* @section requantize */
/* ---- Integer requantization, as TensorFlow Lite Micro does it (gemmlowp double rounding) ---- */

/* round(a * b / 2^31), saturating the one overflow case a == b == INT32_MIN (ARM VQRDMULH). */
static int32_t saturating_rounding_doubling_high_mul(int32_t a, int32_t b)
{
    const int64_t ab = (int64_t)a * (int64_t)b;
    const int64_t nudge = ab >= 0 ? ((int64_t)1 << 30) : (1 - ((int64_t)1 << 30));
    if (a == INT32_MIN && b == INT32_MIN) {
        return INT32_MAX;
    }
    /* Division truncates toward zero, exactly as gemmlowp's does. */
    return (int32_t)((ab + nudge) / ((int64_t)1 << 31));
}

/* x / 2^exponent rounded to nearest, ties away from zero (0 <= exponent <= 31). */
static int32_t rounding_divide_by_pot(int32_t x, int exponent)
{
    const int32_t mask = (int32_t)(((int64_t)1 << exponent) - 1);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    /* >> of a negative int is an arithmetic shift on gcc, clang and every Arm compiler. */
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

/* x * 2^shift in 32 bits; wraps (never undefined) where TFLM's int32 multiply would wrap. */
static int32_t shift_left_wrapping(int32_t x, int shift)
{
    return (int32_t)((int64_t)x * ((int64_t)1 << shift));
}

/* x * multiplier * 2^shift, where multiplier is a Q0.31 number in [0.5, 1). */
static int32_t multiply_by_quantized_multiplier(int32_t x, int32_t multiplier, int shift)
{
    const int left_shift = shift > 0 ? shift : 0;
    const int right_shift = shift > 0 ? 0 : -shift;
    return rounding_divide_by_pot(
        saturating_rounding_doubling_high_mul(shift_left_wrapping(x, left_shift), multiplier),
        right_shift);
}

/* @section dense */
/* ---- FULLY_CONNECTED, int8 in and out, per-channel requantization ---- */

typedef struct {
    int n_used;                       /* inputs some neuron reads (weights elsewhere are all 0) */
    int n_neurons;
    int n_runs;
    const uint16_t (*input_runs)[2];  /* the inputs used, as runs: {first index, count} */
    const int8_t *weights;            /* (n_neurons, n_used): row j holds neuron j's weights */
    const int32_t *folded_bias;       /* (n_neurons,): bias[j] - input_zero_point * sum_i w[j][i] */
    const int32_t *output_multiplier; /* (n_neurons,), Q0.31 */
    const int8_t *output_shift;       /* (n_neurons,), power of two; > 0 shifts left */
    int32_t output_zero_point;
    int32_t activation_min;           /* the fused ReLU (or the int8 range), in output units */
    int32_t activation_max;
} dense_layer;

/* output[j] = clamp(output_zero_point + M_j * (bias[j] + sum_i weights[j][i] * (input[i] - input_zero_point)))
 * with M_j = input_scale * filter_scale[j] / output_scale as output_multiplier[j] * 2^output_shift[j].
 * The input zero point's share, -input_zero_point * sum_i weights[j][i], is a constant folded into
 * folded_bias at generation time (as CMSIS-NN does), so the inner loop is a plain dot product;
 * the int32 sum is the same integer TFLM accumulates.
 *
 * An input whose weight is 0 in every neuron adds nothing, so it is not stored or read: the
 * layer reads its inputs as runs (input_runs), which is every input, one run, unless the
 * network was trained to ignore some (denselab search drops pixels that are rarely lit).
 *
 * The used inputs are taken DENSE_CHUNK at a time, widened once to int16 (dense_input16), and
 * every neuron's share of that chunk is added to its running sum (dense_sums). An int8 x int16
 * dot product is what 16-bit multiply-accumulate instructions do (pmaddwd on x86, SMLAD on Arm
 * cores with the DSP extension): 2.7x faster at gcc -O3 than widening every product. */
static int32_t dot_int8_int16(const int8_t *weights, const int16_t *input, int n)
{
    int32_t acc = 0;
    int i;
    for (i = 0; i < n; i++) {
        acc += (int32_t)weights[i] * (int32_t)input[i];
    }
    return acc;
}

/* dense_sums[j] += neuron j's weights for used inputs done..done+n-1 . dense_input16[0..n-1] */
static void dense_accumulate(const dense_layer *layer, int done, int n)
{
    const int8_t *weights = layer->weights + done;
    int j;
    for (j = 0; j < layer->n_neurons; j++, weights += layer->n_used) {
        dense_sums[j] += dot_int8_int16(weights, dense_input16, n);
    }
}

static void dense_int8(const dense_layer *layer, const int8_t *input, int8_t *output)
{
    int done = 0; /* used inputs already added to dense_sums */
    int n = 0;    /* used inputs waiting in dense_input16 */
    int r, i, j;
    for (j = 0; j < layer->n_neurons; j++) {
        dense_sums[j] = layer->folded_bias[j];
    }
    for (r = 0; r < layer->n_runs; r++) {
        const int8_t *from = input + layer->input_runs[r][0];
        int left = layer->input_runs[r][1];
        while (left > 0) {
            const int take = left < DENSE_CHUNK - n ? left : DENSE_CHUNK - n;
            for (i = 0; i < take; i++) {
                dense_input16[n + i] = from[i];
            }
            n += take;
            from += take;
            left -= take;
            if (n == DENSE_CHUNK) {
                dense_accumulate(layer, done, n);
                done += n;
                n = 0;
            }
        }
    }
    if (n > 0) {
        dense_accumulate(layer, done, n);
    }
    for (j = 0; j < layer->n_neurons; j++) {
        int32_t acc = multiply_by_quantized_multiplier(dense_sums[j], layer->output_multiplier[j],
                                                       layer->output_shift[j]);
        acc += layer->output_zero_point;
        if (acc < layer->activation_min) {
            acc = layer->activation_min;
        }
        if (acc > layer->activation_max) {
            acc = layer->activation_max;
        }
        output[j] = (int8_t)acc;
    }
}

/* @section fixed_point */
/* ---- gemmlowp fixed point: a Qm.n number is an int32 with n = 31 - m fractional bits ---- */

/* x * 2^shift, saturating to the int32 range (gemmlowp's Rescale to fewer integer bits). */
static int32_t saturating_shift_left(int32_t x, int shift)
{
    const int32_t threshold = (int32_t)(((int64_t)1 << (31 - shift)) - 1);
    if (x > threshold) {
        return INT32_MAX;
    }
    if (x < -threshold) {
        return INT32_MIN;
    }
    return shift_left_wrapping(x, shift);
}

/* exp(a) for a in [-1/4, 0), a and result in Q0.31: Taylor series around -1/8. */
static int32_t exp_on_interval_between_negative_one_quarter_and_0(int32_t a)
{
    const int32_t exp_minus_one_eighth = 1895147668; /* exp(-1/8) in Q0.31 */
    const int32_t one_third = 715827883;             /* 1/3 in Q0.31 */
    const int32_t x = a + ((int32_t)1 << 28);        /* a + 1/8 */
    const int32_t x2 = saturating_rounding_doubling_high_mul(x, x);
    const int32_t x3 = saturating_rounding_doubling_high_mul(x2, x);
    const int32_t x4 = saturating_rounding_doubling_high_mul(x2, x2);
    const int32_t x4_over_4 = rounding_divide_by_pot(x4, 2);
    const int32_t x4_over_24_plus_x3_over_6_plus_x2_over_2 = rounding_divide_by_pot(
        saturating_rounding_doubling_high_mul(x4_over_4 + x3, one_third) + x2, 1);
    return exp_minus_one_eighth +
           saturating_rounding_doubling_high_mul(exp_minus_one_eighth,
                                                 x + x4_over_24_plus_x3_over_6_plus_x2_over_2);
}

/* exp(a) for a <= 0 given with integer_bits (4 or 5) integer bits; the result is Q0.31. */
static int32_t exp_on_negative_values(int32_t a, int integer_bits)
{
    /* exp(-2^k) in Q0.31 for k = -2 .. 4: multiplied in for each set bit of -a above 1/4. */
    static const int32_t exp_of_minus_power_of_two[7] = {
        1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242};
    const int fractional_bits = 31 - integer_bits;
    const int32_t one_quarter = (int32_t)1 << (fractional_bits - 2);
    const int32_t a_mod_quarter_minus_one_quarter = (a & (one_quarter - 1)) - one_quarter;
    const int32_t remainder = a_mod_quarter_minus_one_quarter - a;
    int32_t result = exp_on_interval_between_negative_one_quarter_and_0(
        saturating_shift_left(a_mod_quarter_minus_one_quarter, integer_bits));
    int k;
    for (k = -2; k <= 4 && k < integer_bits; k++) {
        if (remainder & ((int32_t)1 << (fractional_bits + k))) {
            result = saturating_rounding_doubling_high_mul(result,
                                                           exp_of_minus_power_of_two[k + 2]);
        }
    }
    return a == 0 ? INT32_MAX : result;
}

/* (a + b) / 2 rounded to nearest, ties away from zero. */
static int32_t rounding_half_sum(int32_t a, int32_t b)
{
    const int64_t sum = (int64_t)a + (int64_t)b;
    return (int32_t)((sum + (sum >= 0 ? 1 : -1)) / 2);
}

/* Newton-Raphson for 2 / (1 + a), a in [0, 1) as Q0.31; returns 2 / (1 + a) as Q2.29. */
static int32_t newton_two_over_one_plus_x(int32_t a)
{
    const int32_t forty_eight_over_17 = 1515870810;        /* 48/17 in Q2.29 */
    const int32_t minus_thirty_two_over_17 = -1010580540;  /* -32/17 in Q2.29 */
    const int32_t one = (int32_t)1 << 29;                  /* 1.0 in Q2.29 */
    const int32_t half_denominator = rounding_half_sum(a, INT32_MAX);
    int32_t x = forty_eight_over_17 +
                saturating_rounding_doubling_high_mul(half_denominator, minus_thirty_two_over_17);
    int step;
    for (step = 0; step < 3; step++) {
        const int32_t half_denominator_times_x =
            saturating_rounding_doubling_high_mul(half_denominator, x);
        const int32_t one_minus_half_denominator_times_x = one - half_denominator_times_x;
        x = x + saturating_shift_left(
                    saturating_rounding_doubling_high_mul(x, one_minus_half_denominator_times_x),
                    2);
    }
    return x;
}

/* @section reciprocal */
/* 1 / (1 + a) for a in [0, 1), both Q0.31. */
static int32_t one_over_one_plus_x(int32_t a)
{
    /* The raw bits of 2 / (1 + a) in Q2.29, read as Q1.30, are 1 / (1 + a); now as Q0.31. */
    return saturating_shift_left(newton_two_over_one_plus_x(a), 1);
}

/* @section softmax */
/* ---- SOFTMAX, int8 in, int8 out with output_scale 1/256 and output_zero_point -128 ---- */

typedef struct {
    int size;
    int32_t input_multiplier; /* beta * input_scale * 2^26 as Q0.31 * 2^input_left_shift */
    int input_left_shift;
    int32_t diff_min;         /* inputs further than this below the maximum give 0 */
} softmax_layer;

static int count_leading_zeros(uint32_t x)
{
    int n = 0;
    while (n < 32 && !(x & 0x80000000u)) {
        x <<= 1;
        n++;
    }
    return n;
}

/* output[c] = exp(beta * input_scale * (input[c] - max)) / sum of those, in Q5.26 / Q12.19. */
static void softmax_int8(const softmax_layer *layer, const int8_t *input, int8_t *output)
{
    int32_t max_input = -128;
    int32_t sum_of_exps = 0; /* Q12.19 */
    int32_t reciprocal;      /* 1 / sum_of_exps * 2^num_bits_over_unit, Q0.31 */
    int headroom_plus_one, num_bits_over_unit, exponent, c;

    for (c = 0; c < layer->size; c++) {
        max_input = input[c] > max_input ? input[c] : max_input;
    }
    for (c = 0; c < layer->size; c++) {
        const int32_t input_diff = (int32_t)input[c] - max_input;
        if (input_diff >= layer->diff_min) {
            const int32_t scaled_diff = saturating_rounding_doubling_high_mul(
                shift_left_wrapping(input_diff, layer->input_left_shift), layer->input_multiplier);
            sum_of_exps += rounding_divide_by_pot(exp_on_negative_values(scaled_diff, 5), 12);
        }
    }

    headroom_plus_one = count_leading_zeros((uint32_t)sum_of_exps);
    num_bits_over_unit = 12 - headroom_plus_one;
    reciprocal = one_over_one_plus_x(
        (int32_t)(((uint32_t)sum_of_exps << headroom_plus_one) - 0x80000000u));
    exponent = num_bits_over_unit + 31 - 8;

    for (c = 0; c < layer->size; c++) {
        const int32_t input_diff = (int32_t)input[c] - max_input;
        int32_t probability = -128;
        if (input_diff >= layer->diff_min) {
            const int32_t scaled_diff = saturating_rounding_doubling_high_mul(
                shift_left_wrapping(input_diff, layer->input_left_shift), layer->input_multiplier);
            const int32_t exp_in_q0 = exp_on_negative_values(scaled_diff, 5);
            probability = rounding_divide_by_pot(
                              saturating_rounding_doubling_high_mul(reciprocal, exp_in_q0),
                              exponent) - 128;
            probability = probability > 127 ? 127 : probability;
        }
        output[c] = (int8_t)probability;
    }
}

/* @section squash */
/* ---- LOGISTIC / TANH share the input scaling: input - zero_point as Q4.27 ---- */

typedef struct {
    int size;
    int32_t input_zero_point;
    int32_t input_range_radius; /* |input - zero_point| at or beyond this saturates */
    int32_t input_multiplier;   /* input_scale * 2^27 as Q0.31 * 2^input_left_shift */
    int input_left_shift;
} squash_layer;

/* @section logistic */
/* output = 1 / (1 + exp(-x)), output_scale 1/256, output_zero_point -128. */
static void logistic_int8(const squash_layer *layer, const int8_t *input, int8_t *output)
{
    int i;
    for (i = 0; i < layer->size; i++) {
        const int32_t x = (int32_t)input[i] - layer->input_zero_point;
        int32_t result;
        if (x <= -layer->input_range_radius) {
            result = -128;
        } else if (x >= layer->input_range_radius) {
            result = 127;
        } else {
            const int32_t x_q4 =
                multiply_by_quantized_multiplier(x, layer->input_multiplier, layer->input_left_shift);
            const int32_t abs_x_q4 = x_q4 > 0 ? x_q4 : -x_q4;
            const int32_t positive = one_over_one_plus_x(exp_on_negative_values(-abs_x_q4, 4));
            const int32_t logistic_q0 =
                x_q4 == 0 ? ((int32_t)1 << 30) : x_q4 > 0 ? positive : INT32_MAX - positive;
            result = rounding_divide_by_pot(logistic_q0, 23) - 128;
            result = result > 127 ? 127 : result < -128 ? -128 : result;
        }
        output[i] = (int8_t)result;
    }
}

/* @section tanh */
/* output = tanh(x), output_scale 1/128, output_zero_point 0. */
static void tanh_int8(const squash_layer *layer, const int8_t *input, int8_t *output)
{
    int i;
    for (i = 0; i < layer->size; i++) {
        const int32_t x = (int32_t)input[i] - layer->input_zero_point;
        int32_t result;
        if (x <= -layer->input_range_radius) {
            result = -128;
        } else if (x >= layer->input_range_radius) {
            result = 127;
        } else {
            const int32_t x_q4 =
                multiply_by_quantized_multiplier(x, layer->input_multiplier, layer->input_left_shift);
            const int32_t minus_abs_x_q4 = x_q4 < 0 ? x_q4 : -x_q4;
            /* tanh(|x|) = 2 / (1 + exp(-2|x|)) - 1; -2|x| in Q5.26 has the raw bits of -|x| in Q4.27. */
            const int32_t exp_q0 = exp_on_negative_values(minus_abs_x_q4, 5);
            const int32_t tanh_abs_q0 =
                saturating_shift_left(newton_two_over_one_plus_x(exp_q0) - ((int32_t)1 << 29), 2);
            const int32_t tanh_q0 = x_q4 == 0 ? 0 : x_q4 < 0 ? -tanh_abs_q0 : tanh_abs_q0;
            result = rounding_divide_by_pot(tanh_q0, 24);
            result = result > 127 ? 127 : result < -128 ? -128 : result;
        }
        output[i] = (int8_t)result;
    }
}
