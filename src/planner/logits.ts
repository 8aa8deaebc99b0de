/**
 * The vocabulary term: logits b x s x V and the loss's fp32 buffers.
 */

// transformers ForCausalLMLoss (loss/loss_utils.py) upcasts with logits.float(); cross_entropy's log_softmax
// saves its fp32 output (4 B); at the start of backward nll_loss's dense fp32 gradient (4 B) and
// log_softmax_backward's fp32 result (4 B) are alive with it: 12 B per logit element. Older transformers
// (<4.45) also kept the fp32 logits and a shifted copy (≈17-19 B/element, estimators.md §1.4).
export const LOSS_BYTES_PER_LOGIT = 12

/**
 * Loss-side bytes alive when backward starts.
 * @example logitsBytes(32064, 1, 2048) // 788,004,864
 */
export function logitsBytes(vocabSize: number, batch: number, seq: number): number {
  return batch * seq * vocabSize * LOSS_BYTES_PER_LOGIT
}
