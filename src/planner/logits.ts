/**
 * The vocabulary term: logits b x s x V and the loss's fp32 buffers, over the whole batch (the full loss) or
 * over one chunk of tokens at a time (the chunked loss, issue 13).
 */
import type { LossImpl } from './types.ts'

// transformers ForCausalLMLoss (loss/loss_utils.py) upcasts with logits.float(); cross_entropy's log_softmax
// saves its fp32 output (4 B); at the start of backward nll_loss's dense fp32 gradient (4 B) and
// log_softmax_backward's fp32 result (4 B) are alive with it: 12 B per logit element. Older transformers
// (<4.45) also kept the fp32 logits and a shifted copy (≈17-19 B/element, estimators.md §1.4).
export const LOSS_BYTES_PER_LOGIT = 12

/**
 * Tokens per chunk of Headroom's chunked cross-entropy (python/headroom_runtime, `--loss chunked`): the one
 * number the trainer and the planner share. 1,024 is torchtune's and TRL's order of magnitude (torchtune's
 * CEWithChunkedOutputLoss splits into 8 chunks; Unsloth and Liger pick chunks of ~1-4k rows): at Phi-3's
 * vocabulary one chunk's fp32 logits are 1,024 x 32,064 x 4 B = 131 MB.
 */
export const LOSS_CHUNK_TOKENS = 1024

/**
 * Loss-side bytes alive when backward starts.
 * @example logitsBytes(32064, 1, 2048) // 788,004,864
 */
export function logitsBytes(vocabSize: number, batch: number, seq: number): number {
  return batch * seq * vocabSize * LOSS_BYTES_PER_LOGIT
}

/**
 * Loss-side bytes alive at the loss's backward, for either implementation.
 * full: logitsBytes, b x s x V x 12 B.
 * chunked: the forward keeps no logits (each chunk's loss is checkpointed: only its slice of the final hidden
 * states, a view, is saved); backward recomputes one chunk at a time, so one chunk's 12 B per logit element is
 * alive, min(b x s, LOSS_CHUNK_TOKENS) x V x 12 B, plus the gradient of the final hidden states that the
 * chunks fill in turn, b x s x h in the stream's dtype (hiddenGradBytesPerToken = h x stream bytes; fp32 under
 * peft's k-bit preparation). The full loss has that buffer too, but only after its logits' buffers are freed,
 * so it never adds to them.
 * @example lossBytes('chunked', 32064, 1, 131072, 3072 * 4) // 1,024 x 32,064 x 12 + 131,072 x 12,288 = 2.0 GB
 */
export function lossBytes(loss: LossImpl, vocabSize: number, batch: number, seq: number, hiddenGradBytesPerToken: number): number {
  if (loss === 'full') return logitsBytes(vocabSize, batch, seq)
  const tokens = batch * seq
  return Math.min(tokens, LOSS_CHUNK_TOKENS) * vocabSize * LOSS_BYTES_PER_LOGIT + tokens * hiddenGradBytesPerToken
}
