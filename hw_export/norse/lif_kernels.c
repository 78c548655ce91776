/* Norse's LIF and LI steps over a whole sequence, forward and adjoint, in float32 (hw_export/norse/native.py).
 *
 * The expressions and their order are those of hw_export/norse/fused.py (Norse's lif_feed_forward_step and
 * li_feed_forward_step; the adjoint written there): every operation is one IEEE float32 operation, compiled
 * with -ffp-contract=off (no fused multiply-add) and without -ffast-math, so the forward pass gives PyTorch's
 * spikes and voltages to the bit, on any x86 or ARM CPU. Arrays are time-first and contiguous: [T, n] with
 * n = batch x neurons; the inner loop runs over the n independent neurons (vectorised by the compiler).
 *
 * Per step, a = dt * tau_mem_inv, syn = -dt * tau_syn_inv (Norse's factors, as float32):
 *   i_new = i + x ;  v_dec = v + a * ((v_leak - v) + i_new) ;  i' = i_new + syn * i_new
 *   z = v_dec > v_th ;  v' = z ? v_reset : v_dec
 */
#include <math.h>
#include <stdint.h>

void lif_forward(const float *restrict x, int64_t steps, int64_t n, float a, float syn, float v_leak, float v_th,
                 float v_reset, float *restrict i_state, float *restrict v_state, float *restrict spikes,
                 float *restrict decayed) {
    for (int64_t k = 0; k < n; ++k) {
        i_state[k] = 0.0f;
        v_state[k] = v_leak;
    }
    for (int64_t t = 0; t < steps; ++t) {
        const float *x_t = x + t * n;
        float *z_t = spikes + t * n;
        float *d_t = decayed + t * n;
        for (int64_t k = 0; k < n; ++k) {
            float i_new = i_state[k] + x_t[k];
            float v_dec = v_state[k] + a * ((v_leak - v_state[k]) + i_new);
            i_state[k] = i_new + syn * i_new;
            int z = v_dec > v_th;
            v_state[k] = z ? v_reset : v_dec;
            z_t[k] = z ? 1.0f : 0.0f;
            d_t[k] = v_dec;
        }
    }
}

/* The adjoint (g: dLoss/d), SuperSpike's surrogate 1 / (|v_dec - v_th| + 1)^2 for dz/dv_dec:
 *   g_z = g_out[t] + g_v * (v_reset - v_dec) ;  g_v_dec = g_v * (1 - z) + g_z * surrogate
 *   g_i = g_i * (1 - b) + a * g_v_dec = g_x[t] ;  g_v = g_v_dec * (1 - a)
 * one_minus_a, one_minus_b: (1 - a), (1 - b) rounded to float32 as PyTorch rounds a Python scalar. */
void lif_backward(const float *restrict grad_out, const float *restrict decayed, int64_t steps, int64_t n,
                  float a, float one_minus_a, float one_minus_b, float v_th, float v_reset, float *restrict grad_v,
                  float *restrict grad_i, float *restrict grad_in) {
    for (int64_t k = 0; k < n; ++k) {
        grad_v[k] = 0.0f;
        grad_i[k] = 0.0f;
    }
    for (int64_t t = steps - 1; t >= 0; --t) {
        const float *restrict g_t = grad_out + t * n, *restrict d_t = decayed + t * n;
        float *restrict gx_t = grad_in + t * n;
        for (int64_t k = 0; k < n; ++k) {
            float gap = fabsf(d_t[k] - v_th) + 1.0f;
            float surrogate = 1.0f / (gap * gap);
            float silent = d_t[k] > v_th ? 0.0f : 1.0f;  /* 1 - z, z recomputed as the forward pass found it */
            float g_z = g_t[k] + grad_v[k] * (v_reset - d_t[k]);
            float g_v_dec = grad_v[k] * silent + g_z * surrogate;
            grad_i[k] = grad_i[k] * one_minus_b + a * g_v_dec;
            gx_t[k] = grad_i[k];
            grad_v[k] = g_v_dec * one_minus_a;
        }
    }
}

/* The readout (Norse's LICell), output v':
 *   i_jump = i + x ;  v' = v + a * ((v_leak - v) + i_jump) ;  i' = i_jump + syn * i_jump */
void li_forward(const float *x, int64_t steps, int64_t n, float a, float syn, float v_leak, float *i_state,
                float *voltages) {
    const float *v_prev = 0;
    for (int64_t k = 0; k < n; ++k) i_state[k] = 0.0f;
    for (int64_t t = 0; t < steps; ++t) {
        const float *x_t = x + t * n;
        float *v_t = voltages + t * n;
        for (int64_t k = 0; k < n; ++k) {
            float v = v_prev ? v_prev[k] : v_leak;
            float i_jump = i_state[k] + x_t[k];
            v_t[k] = v + a * ((v_leak - v) + i_jump);
            i_state[k] = i_jump + syn * i_jump;
        }
        v_prev = v_t;
    }
}

/* Its adjoint: g_v' = g_out[t] + g_v ;  g_i = g_i * (1 - b) + a * g_v' = g_x[t] ;  g_v = g_v' * (1 - a) */
void li_backward(const float *grad_out, int64_t steps, int64_t n, float a, float one_minus_a, float one_minus_b,
                 float *grad_v, float *grad_i, float *grad_in) {
    for (int64_t k = 0; k < n; ++k) {
        grad_v[k] = 0.0f;
        grad_i[k] = 0.0f;
    }
    for (int64_t t = steps - 1; t >= 0; --t) {
        const float *g_t = grad_out + t * n;
        float *gx_t = grad_in + t * n;
        for (int64_t k = 0; k < n; ++k) {
            float g_v_new = g_t[k] + grad_v[k];
            grad_i[k] = grad_i[k] * one_minus_b + a * g_v_new;
            gx_t[k] = grad_i[k];
            grad_v[k] = g_v_new * one_minus_a;
        }
    }
}
