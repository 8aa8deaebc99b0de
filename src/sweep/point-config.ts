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
  if (fields.method !== undefined && fields.method !== 'qlora') {
    input.quant = 'none'
    input.doubleQuant = false
  }
  if (input.method === 'qlora' && input.quant === 'none') {
    input.quant = 'nf4'
    if (fields.doubleQuant === undefined) input.doubleQuant = true
  }
  // A quantized base is a QLoRA run whatever the base said (the trainer infers qlora from load_in_4bit/8bit).
  if (fields.quant !== undefined && fields.quant !== 'none' && fields.method === undefined) input.method = 'qlora'
  if (fields.quant === 'none' && fields.method === undefined && input.method === 'qlora') input.method = 'lora'
  if (input.quant !== 'nf4' && input.quant !== 'fp4') input.doubleQuant = false
  return input
}

/** The point's training_config sections: the base file's other keys kept (data, schedule, output). */
export function pointSections(baseSections: Sections, base: PlanInput, fields: PointFields): Sections {
  return encode(pointInput(base, fields), baseSections)
}
