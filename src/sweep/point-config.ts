/**
 * A sweep point as a training_config: the base config decoded to a PlanInput, the point's
 * fields laid over it, and the result encoded back through the codec (config/codec.ts). The
 * run then predicts from that very file, so the prediction and the run agree by construction.
 * Pure.
 */
import { encode, type Sections } from '../config/codec.ts'
import type { PlanInput } from '../planner/types.ts'
import type { PointFields } from './spec.ts'

/**
 * The PlanInput a point asks for. Fields that depend on the method follow the trainer's rules
 * when the point leaves them out: qlora without a quant is nf4 with double quantization
 * (train.py --method qlora), lora and full load unquantized.
 * @example pointInput(base, { method: 'lora' }).quant // 'none'
 */
export function pointInput(base: PlanInput, fields: PointFields): PlanInput {
  const input: PlanInput = { ...base }
  for (const [k, v] of Object.entries(fields)) (input as Record<string, unknown>)[k] = v
  // A quantized base is a QLoRA run (the trainer infers qlora from load_in_4bit/8bit)...
  if (fields.quant !== undefined && fields.quant !== 'none') {
    if (input.method === 'full') throw new Error(`method full cannot train a ${fields.quant}-quantized base: drop quant or use method qlora`)
    input.method = 'qlora'
  }
  // ...and an unquantized one is LoRA or full.
  if (fields.quant === 'none' && input.method === 'qlora') input.method = 'lora'
  if (input.method !== 'qlora') input.quant = 'none'
  else if (input.quant === 'none') {
    input.quant = 'nf4'
    if (fields.doubleQuant === undefined) input.doubleQuant = true
  }
  if (input.quant !== 'nf4' && input.quant !== 'fp4') input.doubleQuant = false
  return input
}

/** The point's training_config sections: the base file's other keys kept (data, schedule, output). */
export function pointSections(baseSections: Sections, base: PlanInput, fields: PointFields): { input: PlanInput; sections: Sections } {
  const input = pointInput(base, fields)
  return { input, sections: encode(input, baseSections) }
}
