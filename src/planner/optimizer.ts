/**
 * Optimizer state and the transient buffers of optimizer.step(), per trainable parameter.
 */
import type { Device, Optimizer } from './types.ts'

// torch.optim.AdamW keeps exp_avg and exp_avg_sq like the parameter (zeros_like): two parameter-sized states.
const ADAMW_STATES = 2
// bitsandbytes 8-bit blockwise Adam: two uint8 states plus one fp32 absmax per block of 256 each (QLoRA/8-bit optimizers paper, block 256 in bnb.functional).
export const ADAMW_8BIT_BYTES_PER_PARAM = 2 * (1 + 4 / 256)
// Derived (estimators.md §1.1): fms-acceleration full FT peaks identical at batch 4 and 8 imply one extra parameter-sized buffer at step (torch foreach AdamW temporaries).
const ADAMW_STEP_TRANSIENT_STATES = 1
// On CPU torch AdamW runs its single-tensor loop: two temporaries of one parameter at a time (exp_avg_sq.sqrt() and the denominator); bench/plan-trace.ts.
const ADAMW_CPU_STEP_TEMPORARIES = 2

export type OptimizerTerms = {
  /** Persistent optimizer state on the device, bytes. */
  stateBytes: number
  /** Extra bytes alive only during optimizer.step(), bytes. */
  stepTransientBytes: number
}

/**
 * State of the optimizer the Trainer builds for `optim`. Paged optimizers live in CUDA unified
 * memory and are evicted to host RAM under pressure, so the device allocator never counts them
 * (QLoRA paper §3; torchtune PagedAdamW rows sit below weights + state). Trainer's `sgd` is
 * torch.optim.SGD without momentum: no state.
 * @example optimizerTerms('adamw', 1_572_864, 4, 24_576, 'cuda').stateBytes // 12,582,912
 */
export function optimizerTerms(
  optimizer: Optimizer,
  trainableParams: number,
  paramBytes: number,
  largestTrainableTensor: number,
  device: Device,
): OptimizerTerms {
  switch (optimizer) {
    case 'adamw':
      return {
        stateBytes: trainableParams * paramBytes * ADAMW_STATES,
        stepTransientBytes:
          device === 'cuda'
            ? trainableParams * paramBytes * ADAMW_STEP_TRANSIENT_STATES
            : largestTrainableTensor * paramBytes * ADAMW_CPU_STEP_TEMPORARIES,
      }
    case 'adamw_8bit':
      return { stateBytes: trainableParams * ADAMW_8BIT_BYTES_PER_PARAM, stepTransientBytes: 0 }
    case 'paged_adamw_8bit':
    case 'sgd':
      return { stateBytes: 0, stepTransientBytes: 0 }
  }
}
