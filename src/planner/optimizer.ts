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
// On CPU `adamw` is what the trainer builds for TrainingArguments' default optim adamw_torch_fused (transformers 5):
// torch.optim.AdamW(fused=True), whose CPU kernel (aten/src/ATen/native/cpu/FusedAdamKernel.cpp) updates param,
// exp_avg and exp_avg_sq in place element by element: no parameter-sized temporaries. Measured (torch 2.13 CPU,
// MemTracker): fused step Optstate = 2 x params exactly, tiny Phi-3 full 63,213,936 B peak with Optstate 2 x 15,737,856 + 108 B
// of step counters (bench/results/cpu-memory-accuracy.json). (The unfused single-tensor loop would hold two temporaries of
// the largest parameter, exp_avg_sq.sqrt() and the denominator.) Units: parameter-sized tensors of the largest trainable tensor.
export const ADAMW_CPU_STEP_TEMPORARIES = 0

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
