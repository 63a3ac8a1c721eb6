/* @section dense */
/* ${c_name}: FULLY_CONNECTED ${n_inputs} -> ${n_neurons}, ${activation}
 * input_scale ${input_scale}, input_zero_point ${input_zero_point}; output_scale ${output_scale}, output_zero_point ${output_zero_point}
 * M_j = input_scale * filter_scale[j] / output_scale = output_multiplier[j] * 2^(output_shift[j] - 31) */
${inputs_comment}
${input_runs_table}/* Two neurons to an int16: weights[p][k] = 256 * w[2p + 1][i] + w[2p][i] + 128, k running over
 * the used inputs i, each four in the order 0, 2, 1, 3${padding_comment} */
static const int16_t ${c_name}_weights[${n_pairs}][${row_length}] DENSELAB_WORD_ALIGNED = {
${weights}
};
/* bias[j] - input_zero_point * sum_i weights[j][i]: the zero point's share, folded in once */
static const int32_t ${c_name}_folded_bias[${n_neurons}] = {
${folded_bias}
};
static const int32_t ${c_name}_output_multiplier[${n_neurons}] = {
${output_multiplier}
};
static const int8_t ${c_name}_output_shift[${n_neurons}] = {
${output_shift}
};
static const denselab_fully_connected ${c_name} = {
    .row_length = ${row_length},
    .n_neurons = ${n_neurons},
    .output_zero_point = ${output_zero_point},
    .activation_min = ${activation_min},
    .activation_max = ${activation_max},
    .weights = &${c_name}_weights[0][0],
    .folded_bias = ${c_name}_folded_bias,
    .output_multiplier = ${c_name}_output_multiplier,
    .output_shift = ${c_name}_output_shift,
};

/* @section softmax */
/* ${c_name}: SOFTMAX, beta ${beta}
 * input_scale ${input_scale}, input_zero_point ${input_zero_point}; output_scale ${output_scale}, output_zero_point ${output_zero_point} */
static const denselab_softmax ${c_name} = {
    .size = ${size},
    .input_multiplier = ${input_multiplier},
    .input_left_shift = ${input_left_shift},
    .diff_min = ${diff_min},
};

/* @section squash */
/* ${c_name}: ${KIND}
 * input_scale ${input_scale}, input_zero_point ${input_zero_point}; output_scale ${output_scale}, output_zero_point ${output_zero_point} */
static const denselab_squash ${c_name} = {
    .size = ${size},
    .input_zero_point = ${input_zero_point},
    .input_range_radius = ${input_range_radius},
    .input_multiplier = ${input_multiplier},
    .input_left_shift = ${input_left_shift},
};

