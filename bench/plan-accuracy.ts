/**
 * Compares the planner with the measured rows of ../shared/research/memory-measurements-dev.csv,
 * like with like: allocated-type rows (torch.cuda.max_memory_allocated, active_bytes peak) against
 * peakAllocatedBytes, reserved rows (max_memory_reserved) against peakBytes minus the CUDA context,
 * device-level rows against peakBytes. Every row is either scored, checked as a bound, or skipped
 * with the reason. Prints a table, the median and p90 absolute % error, and writes
 * bench/results/plan-accuracy.json.
 *
 *   node --import tsx bench/plan-accuracy.ts [path/to/measurements.csv]
 */
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { archFromHfConfig, findModelSync } from '../src/catalog/index.ts'
import type { ModelArch } from '../src/catalog/types.ts'
import { HEADROOM_PATH, memoryTerms, type ChunkedHeadLoop, type PlanPath } from '../src/planner/peak.ts'
import { CUDA_CONTEXT_BYTES } from '../src/planner/overhead.ts'
import type { PlanInput } from '../src/planner/types.ts'
import { BYTES_PER_ELEMENT, GIB } from '../src/units.ts'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const csvPath = process.argv[2] ?? join(root, '..', 'shared', 'research', 'memory-measurements-dev.csv')

type Measure = 'allocated' | 'reserved' | 'device'
type Spec = {
  model: string
  input: Partial<PlanInput>
  measure: Measure
  /** Bytes per unit of measured_peak_gb. */
  unit: number
  /** What was assumed beyond the row's own fields. */
  note?: string
  /** Rows whose numbers set a planner constant (docs/accuracy.md). */
  calibration?: boolean
  /** The stack's code path where it differs from Headroom's (peak.ts PlanPath). */
  path?: PlanPath
  /** lit-gpt's own Llama (fused qkv): see litgptArch. */
  litgpt?: boolean
}
type Bound = { model: string; input: Partial<PlanInput>; above: number; note: string; litgpt?: boolean }
type Row = Record<string, string>

// TinyLlama/TinyLlama-1.1B-intermediate-step-1431k-3T config.json (not a catalog model).
const TINYLLAMA = archFromHfConfig(
  { model_type: 'llama', hidden_size: 2048, intermediate_size: 5632, num_hidden_layers: 22, num_attention_heads: 32, num_key_value_heads: 4, vocab_size: 32000, max_position_embeddings: 2048 },
  'tinyllama-1.1b',
)

const QV = ['q_proj', 'v_proj']
const ALL_AND_HEAD = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj', 'lm_head']
const LORA = { method: 'lora', quant: 'none', doubleQuant: false } as const
const QLORA = { method: 'qlora', quant: 'nf4', doubleQuant: false } as const
// LoRA dropout as each source's code ran it (none of the CSV's columns gives it; the notes name the configs):
// lit-gpt finetune/lora.py (commit 8641822, the resource tables' and the 2023 articles' script) sets lora_dropout = 0.05;
// every litgpt config_hub/finetune/<model>/{lora,qlora}.yaml the config hub rows name sets lora_dropout: 0.05 (also at
// 00af8b0 for Llama-3.2); torchtune's 7B_lora/qlora_single_device configs (0914d5c, ff594c2, fef3ed1) leave it to the
// lora_llama2_7b / qlora_llama2_7b builders, whose default is lora_dropout=0.05. The seed's rows are KAITO's templates: 0.0.
const DROPOUT_SOURCES: { rows: [number, number]; source: string }[] = [
  { rows: [9, 23], source: "lora_dropout 0.05: torchtune's lora_llama2_7b/qlora_llama2_7b builder default (the config leaves it)" },
  { rows: [50, 66], source: 'lora_dropout 0.05: lit-gpt finetune/lora.py (commit 8641822)' },
  { rows: [67, 78], source: 'lora_dropout 0.05: config_hub/finetune/<model>/<method>.yaml' },
]
const LITGPT = { attention: 'sdpa', gradientCheckpointing: false, batch: 1, seq: 1304, rank: 8, targets: QV, loraDropout: 0.05 } as const
const LITGPT_PAGED = 'lit-gpt quantized runs use bnb PagedAdamW (paged: not counted on device)'
// lit-gpt quantizes with bitsandbytes but without peft's k-bit preparation (bf16 stream, 16-bit embeddings and head),
// on the 2023 bitsandbytes whose MatMul4Bit kept its input (ctx.tensors = (A, B)).
// Both quantize through lightning fabric's BitsandbytesPrecision (lit-gpt finetune/lora.py @8641822:74, litgpt
// finetune/lora.py @e5493986:138), which replaces every nn.Linear, lm_head included, and quantizes an fp16 copy:
// the head is 4-bit and its dequantization holds 4 B per element (PlanPath.quantizedHeadDequantBytesPerElement).
// lit-gpt/litgpt's loop under Lightning Fabric (PlanPath.chunkedHeadLoop): 128-token head chunks, cast to float32 by
// Fabric's convert_output, and chunked_cross_entropy's float32 log_softmax outputs (finetune/lora.py @8641822:216-219
// and @e5493986:304-306; measured with the real Fabric 2.1.0 and lit-gpt 8641822, bench/litgpt_fabric_step.py).
const LITGPT_LOOP: ChunkedHeadLoop = { heldBytesPerLogit: BYTES_PER_ELEMENT.fp32, lossSavedBytesPerLogit: BYTES_PER_ELEMENT.fp32, chunkTokens: 128 }
const LITGPT_HEAD_DEQUANT_BYTES_PER_ELEMENT = BYTES_PER_ELEMENT.fp16 + BYTES_PER_ELEMENT.bf16
const LITGPT_PATH: PlanPath = { kbitPrepared: false, quantSavesInput: true, quantizedHeadDequantBytesPerElement: LITGPT_HEAD_DEQUANT_BYTES_PER_ELEMENT }
// The config hub's litgpt (2024, bitsandbytes==0.42.0 pinned in pyproject.toml @e5493986 and @00af8b0, whose
// MatMul4Bit still keeps ctx.tensors = (A, B)) keeps each step's logits until the next forward returns (fit,
// finetune/lora.py @e5493986:304), so the previous step's graph and 4-bit inputs are alive at the end of the next
// forward (PlanPath.keepsPreviousStepGraph). Its batches are random (no longest-first, unlike 2023), so consecutive
// 512-token batches are the case the 512-token rows plan. The 2023 rows peak at iteration 0 (the longest sample
// forced first), which has no previous step, and iteration 1 is a random, shorter sample: not set there.
const HUB_LORA_PATH: PlanPath = { ...HEADROOM_PATH, keepsPreviousStepGraph: true }
const HUB_QLORA_PATH: PlanPath = { ...LITGPT_PATH, keepsPreviousStepGraph: true }
// torchtune's QLoRA: torchao NF4Tensor, no peft preparation; its linear_nf4 saves only the weight.
// And it quantizes on the GPU, one Linear at a time, with the rest of the model resident (torchtune 0914d5c, torchao 0.1,
// the version its pyproject.toml pins). Construction: LoRALinear._create_weight_and_bias builds nn.Linear in bf16 under
// the recipe's device context and calls to_nf4 on it (torchtune/modules/peft/lora.py:93-94;
// recipes/lora_finetune_single_device.py:254); then model.load_state_dict (recipe :267) copies each CPU tensor of the
// checkpoint (safe_torch_load map_location="cpu", _checkpointer_utils.py:70) through torchtune's NF4 copy_ override,
// `to_nf4(src.to(dest.device))` (torchtune/utils/_register_nf4_dispatch_ops.py:31-33), with every other weight already
// on the device. Per element n of the Linear being converted, in bytes, alive at once (torchao/dtypes/nf4tensor.py @v0.1):
// the bf16 weight on the device 2, scaled_blocks = blocks / scales 2 (:394), and in quantize_tensor_nearest
// `(value.unsqueeze(-1) - nf4).abs()` (:444): an (n, 16) bf16 difference 32 and its abs 32, both alive until abs returns.
// (A fp16 checkpoint adds its bf16 cast, to_nf4 :588, 2 more: not counted, the checkpoint's dtype is not in the row.)
const TORCHTUNE_NF4_CONVERT_BYTES_PER_ELEMENT = 2 + 2 + 16 * 2 + 16 * 2
// Its recipes build the model under training.set_default_dtype(bf16) (recipes/lora_finetune_single_device.py), so the
// LoRALinear's lora_a/lora_b nn.Linear are bf16 as well: 2-byte adapters, gradients, AdamW states and adapter branch.
const TORCHTUNE_PATH: PlanPath = {
  kbitPrepared: false, quantSavesInput: false, quantizeOnDeviceBytesPerElement: TORCHTUNE_NF4_CONVERT_BYTES_PER_ELEMENT, adapterBytesPerParam: 2,
}
const HUB = '512 tokens: the yaml\'s train.max_seq_length 512 truncates each example and each padded batch (litgpt/data/base.py @e5493986:84, :118-119), the longest batch assumed at that cap'
const TT_TUTORIAL = { attention: 'sdpa', gradientCheckpointing: true, batch: 2, seq: 512, optimizer: 'adamw', loraDropout: 0.05 } as const
const TT_NOTE = 'assumed a 512-token batch (alpaca_cleaned truncated at max_seq_len 512); torchtune, not peft'

/** Data row number (1-based, header excluded) -> how to plan it, as a bound, or why it is skipped. */
const SPECS: Record<number, Spec | Bound | string> = {
  1: { model: 'phi-3-mini-128k-instruct', input: { ...LORA, phase: 'load', dtype: 'fp32' }, measure: 'device', unit: 1e9, note: 'measure not stated: read as device-level at load (seed)', calibration: true },
  2: { model: 'phi-3-mini-128k-instruct', input: { ...LORA, phase: 'load', dtype: 'bf16' }, measure: 'device', unit: 1e9, note: 'measure not stated: read as device-level at load (seed)', calibration: true },
  3: { model: 'phi-3-mini-128k-instruct', input: { method: 'qlora', quant: 'int8', phase: 'load' }, measure: 'device', unit: 1e9, note: 'measure not stated: read as device-level at load (seed)' },
  4: { model: 'phi-3-mini-128k-instruct', input: { method: 'qlora', quant: 'nf4', doubleQuant: true, phase: 'load' }, measure: 'device', unit: 1e9, note: 'int4 read as KAITO qlora template (nf4, double quant)' },
  5: { model: 'phi-3-mini-128k-instruct', input: { ...LORA, attention: 'eager', gradientCheckpointing: false, batch: 1, seq: 3500 }, above: 80e9, note: 'seed: LoRA 16-bit exceeds 80 GB at ~3,500 tokens (eager, batch 1 per the issue)' },
  6: 'batch and sequence "per config"/unknown (FSDP full fine-tune)',
  7: 'same run as row 20 (torchtune README quotes the tutorial)',
  8: 'batch "per config" (distributed)',
  9: { model: 'llama-2-7b', input: { ...LORA, ...TT_TUTORIAL, rank: 8, targets: QV }, measure: 'reserved', path: TORCHTUNE_PATH, unit: 1e9, note: TT_NOTE },
  10: 'optimizer_in_bwd (fused optimizer step in backward) is not modelled',
  11: 'batch and optimizer "per config" (distributed)',
  12: 'measure unknown and torch.compile',
  13: 'measure unknown; targets and checkpointing "per default config"',
  14: 'measure unknown (2 GPUs, per config)',
  15: 'measure unknown; optimizer_in_bwd default',
  16: 'measure unknown (4 GPUs, per config)',
  17: 'measure unknown (8 GPUs FSDP, per config)',
  18: 'measure unknown (8 GPUs FSDP, per config)',
  19: { model: 'llama-2-7b', input: { ...LORA, ...TT_TUTORIAL, rank: 8, targets: QV }, measure: 'reserved', path: TORCHTUNE_PATH, unit: 1e9, note: TT_NOTE },
  20: { model: 'llama-2-7b', input: { method: 'qlora', quant: 'nf4', doubleQuant: true, ...TT_TUTORIAL, rank: 8, targets: 'all-linear' }, measure: 'reserved', path: TORCHTUNE_PATH, unit: 1e9, note: `${TT_NOTE}; torchao NF4 read as nf4 + double quant` },
  21: { model: 'llama-2-7b', input: { ...LORA, ...TT_TUTORIAL, rank: 8, targets: ALL_AND_HEAD }, measure: 'reserved', path: TORCHTUNE_PATH, unit: 1e9, note: TT_NOTE },
  22: { model: 'llama-2-7b', input: { ...LORA, ...TT_TUTORIAL, rank: 64, targets: QV }, measure: 'reserved', path: TORCHTUNE_PATH, unit: 1e9, note: TT_NOTE },
  23: { model: 'llama-2-7b', input: { ...LORA, ...TT_TUTORIAL, rank: 64, targets: ALL_AND_HEAD }, measure: 'reserved', path: TORCHTUNE_PATH, unit: 1e9, note: TT_NOTE },
  24: 'measure unknown',
  25: 'measure unknown; optimizer "per config"',
  26: 'measure unknown; optimizer "per config"',
  27: 'measure unknown; rank/targets "per default config"',
  28: 'measure unknown; rank/targets "per default config"',
  29: 'measure unknown; rank/targets "per default config"',
  30: 'measure unknown; CPU offload',
  31: 'measure unknown (8 GPUs)',
  32: 'measure unknown (8 GPUs)',
  33: 'not packed: the longest batch length is unknown',
  34: { model: 'llama-3.2-3b', input: { method: 'full', quant: 'none', attention: 'sdpa', gradientCheckpointing: false, batch: 2, seq: 4096, optimizer: 'adamw' }, measure: 'allocated', unit: GIB, note: 'packed to 4096; torchtune full FT with bf16 AdamW states' },
  35: 'torch.compile is not modelled',
  36: 'chunked cross-entropy (and compile) are not modelled',
  37: 'cumulative with compile and chunked cross-entropy',
  38: 'optimizer_in_bwd is not modelled',
  39: 'activation offloading is not modelled',
  40: 'activation offloading and optimizer_in_bwd are not modelled',
  41: 'cumulative with activation offloading, compile and chunked cross-entropy',
  42: 'cumulative with activation offloading, compile and chunked cross-entropy',
  43: 'phi-1_5 (model_type phi) is not a supported architecture',
  44: 'phi-1_5 (model_type phi) is not a supported architecture',
  45: 'phi-1_5 (model_type phi) is not a supported architecture',
  46: 'phi-1_5 (model_type phi) is not a supported architecture',
  47: 'stablelm-base-alpha (gpt-neox) is not a supported architecture',
  48: 'stablelm-base-alpha (gpt-neox) is not a supported architecture',
  49: 'stablelm-base-alpha (gpt-neox) is not a supported architecture',
  50: { model: 'llama-2-7b', input: { ...LORA, ...LITGPT, optimizer: 'adamw' }, litgpt: true, measure: 'allocated', unit: 1e9 },
  51: { model: 'llama-2-7b', input: { ...QLORA, ...LITGPT, optimizer: 'paged_adamw_8bit' }, litgpt: true, measure: 'allocated', path: LITGPT_PATH, unit: 1e9, note: LITGPT_PAGED },
  52: { model: 'llama-2-7b', input: { ...QLORA, doubleQuant: true, ...LITGPT, optimizer: 'paged_adamw_8bit' }, litgpt: true, measure: 'allocated', path: LITGPT_PATH, unit: 1e9, note: LITGPT_PAGED },
  53: { model: 'llama-2-7b', input: { ...LORA, ...LITGPT, batch: 2, optimizer: 'adamw' }, litgpt: true, measure: 'allocated', unit: 1e9 },
  54: { model: 'llama-2-7b', input: { ...LORA, ...LITGPT, batch: 4, optimizer: 'adamw' }, litgpt: true, above: 40e9, note: 'OOM on a 40 GB A100' },
  55: { model: 'llama-2-13b', input: { ...LORA, ...LITGPT, optimizer: 'adamw' }, litgpt: true, measure: 'allocated', unit: 1e9 },
  56: { model: 'llama-2-13b', input: { ...QLORA, ...LITGPT, optimizer: 'paged_adamw_8bit' }, litgpt: true, measure: 'allocated', path: LITGPT_PATH, unit: 1e9, note: LITGPT_PAGED },
  57: { model: 'llama-2-13b', input: { ...QLORA, doubleQuant: true, ...LITGPT, optimizer: 'paged_adamw_8bit' }, litgpt: true, measure: 'allocated', path: LITGPT_PATH, unit: 1e9, note: LITGPT_PAGED },
  58: 'falcon-40b is not a supported architecture',
  59: 'stablelm-base-alpha (gpt-neox) is not a supported architecture',
  60: { model: 'llama-2-7b', input: { ...LORA, ...LITGPT, dtype: 'fp32', optimizer: 'adamw' }, above: 40e9, note: 'bf16-mixed keeps fp32 weights; OOM on a 40 GB A100 (read as dtype fp32)' },
  61: { model: 'llama-2-7b', input: { ...LORA, ...LITGPT, optimizer: 'adamw' }, litgpt: true, measure: 'allocated', unit: 1e9 },
  62: { model: 'llama-2-7b', input: { ...QLORA, ...LITGPT, optimizer: 'paged_adamw_8bit' }, litgpt: true, measure: 'allocated', path: LITGPT_PATH, unit: 1e9, note: LITGPT_PAGED },
  63: { model: 'llama-2-7b', input: { ...QLORA, quant: 'fp4', ...LITGPT, optimizer: 'paged_adamw_8bit' }, litgpt: true, measure: 'allocated', path: LITGPT_PATH, unit: 1e9, note: LITGPT_PAGED },
  64: { model: 'llama-2-7b', input: { ...QLORA, ...LITGPT, optimizer: 'sgd' }, litgpt: true, measure: 'allocated', path: LITGPT_PATH, unit: 1e9 },
  65: { model: 'llama-2-7b', input: { ...QLORA, ...LITGPT, targets: ALL_AND_HEAD, optimizer: 'paged_adamw_8bit' }, litgpt: true, measure: 'allocated', path: LITGPT_PATH, unit: 1e9, note: LITGPT_PAGED },
  66: { model: 'llama-2-7b', input: { ...QLORA, ...LITGPT, rank: 16, targets: ALL_AND_HEAD, optimizer: 'paged_adamw_8bit' }, litgpt: true, measure: 'allocated', path: LITGPT_PATH, unit: 1e9, note: LITGPT_PAGED },
  67: { model: 'llama-2-7b', input: { ...LORA, ...LITGPT, rank: 32, batch: 2, seq: 512, optimizer: 'adamw' }, litgpt: true, measure: 'allocated', path: HUB_LORA_PATH, unit: 1e9, note: HUB },
  68: { model: 'llama-2-7b', input: { ...QLORA, ...LITGPT, rank: 32, batch: 2, seq: 512, optimizer: 'paged_adamw_8bit' }, litgpt: true, measure: 'allocated', path: HUB_QLORA_PATH, unit: 1e9, note: `${HUB}; ${LITGPT_PAGED}` },
  69: { model: 'llama-3-8b', input: { ...LORA, ...LITGPT, rank: 32, batch: 1, seq: 512, optimizer: 'adamw' }, litgpt: true, measure: 'allocated', path: HUB_LORA_PATH, unit: 1e9, note: HUB },
  70: { model: 'llama-3-8b', input: { ...QLORA, ...LITGPT, rank: 32, batch: 2, seq: 512, optimizer: 'paged_adamw_8bit' }, litgpt: true, measure: 'allocated', path: HUB_QLORA_PATH, unit: 1e9, note: `${HUB}; ${LITGPT_PAGED}` },
  71: { model: 'mistral-7b-v0.1', input: { ...LORA, ...LITGPT, rank: 32, batch: 2, seq: 512, optimizer: 'adamw' }, litgpt: true, measure: 'allocated', path: HUB_LORA_PATH, unit: 1e9, note: HUB },
  72: { model: 'mistral-7b-v0.1', input: { ...QLORA, ...LITGPT, rank: 32, batch: 2, seq: 512, optimizer: 'paged_adamw_8bit' }, litgpt: true, measure: 'allocated', path: HUB_QLORA_PATH, unit: 1e9, note: `${HUB}; ${LITGPT_PAGED}` },
  73: { model: 'llama-3.2-1b', input: { ...LORA, ...LITGPT, rank: 32, batch: 1, seq: 512, optimizer: 'adamw' }, litgpt: true, measure: 'allocated', path: HUB_LORA_PATH, unit: 1e9, note: HUB },
  74: { model: 'llama-3.2-1b', input: { ...QLORA, ...LITGPT, rank: 32, batch: 2, seq: 512, optimizer: 'paged_adamw_8bit' }, litgpt: true, measure: 'allocated', path: HUB_QLORA_PATH, unit: 1e9, note: `${HUB}; ${LITGPT_PAGED}` },
  75: { model: 'llama-3.2-3b', input: { ...LORA, ...LITGPT, rank: 32, batch: 1, seq: 512, optimizer: 'adamw' }, litgpt: true, measure: 'allocated', path: HUB_LORA_PATH, unit: 1e9, note: HUB },
  76: { model: 'llama-3.2-3b', input: { ...QLORA, ...LITGPT, rank: 32, batch: 2, seq: 512, optimizer: 'paged_adamw_8bit' }, litgpt: true, measure: 'allocated', path: HUB_QLORA_PATH, unit: 1e9, note: `${HUB}; ${LITGPT_PAGED}` },
  77: { model: 'tinyllama-1.1b', input: { ...LORA, ...LITGPT, rank: 32, batch: 8, seq: 512, targets: ALL_AND_HEAD, optimizer: 'adamw' }, litgpt: true, measure: 'allocated', path: HUB_LORA_PATH, unit: 1e9, note: HUB },
  78: { model: 'tinyllama-1.1b', input: { ...QLORA, ...LITGPT, rank: 32, batch: 8, seq: 512, targets: ALL_AND_HEAD, optimizer: 'paged_adamw_8bit' }, litgpt: true, measure: 'allocated', path: HUB_QLORA_PATH, unit: 1e9, note: `${HUB}; ${LITGPT_PAGED}` },
}

function parseCsv(text: string): Row[] {
  const records: string[][] = []
  let field = ''
  let record: string[] = []
  let quoted = false
  for (let i = 0; i < text.length; i++) {
    const c = text[i]
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { field += '"'; i++ }
      else if (c === '"') quoted = false
      else field += c
    } else if (c === '"') quoted = true
    else if (c === ',') { record.push(field); field = '' }
    else if (c === '\n') { record.push(field); records.push(record); record = []; field = '' }
    else if (c !== '\r') field += c
  }
  if (field || record.length) { record.push(field); records.push(record) }
  const [header, ...rows] = records
  return rows.filter((r) => r.length === header.length).map((r) => Object.fromEntries(header.map((h, i) => [h, r[i]])))
}

function model(name: string): ModelArch {
  if (name === TINYLLAMA.name) return TINYLLAMA
  const arch = findModelSync(name)
  if (!arch) throw new Error(`bench spec names ${name}, which the catalog does not have`)
  return arch
}

/**
 * lit-gpt's Llama: one fused `attn` Linear (h -> q + 2kv) instead of q_proj/k_proj/v_proj (lit_gpt/model.py
 * CausalSelfAttention), so v is a view that keeps the whole qkv output alive, and its LoRA on "query, value" is one
 * LoRAQKVLinear reading one input.
 */
function litgptArch(arch: ModelArch): ModelArch {
  const byName = Object.fromEntries(arch.layerLinears.map((m) => [m.name, m]))
  const q = byName.q_proj, k = byName.k_proj, v = byName.v_proj
  if (!q || !k || !v) return arch
  const fused = { name: 'qkv_proj', inFeatures: q.inFeatures, outFeatures: q.outFeatures + k.outFeatures + v.outFeatures, bias: q.bias }
  return { ...untied(arch), name: `${arch.name} (lit-gpt)`, layerLinears: [fused, ...arch.layerLinears.filter((m) => m !== q && m !== k && m !== v)] }
}

/**
 * litgpt has no weight tying (litgpt/model.py @00af8b0, GPT.__init__: `self.lm_head = nn.Linear(...)`, a parameter of
 * its own), and its converter copies a tied checkpoint's embedding into it (scripts/convert_hf_checkpoint.py:206-207,
 * `if "lm_head.weight" not in state_dict: state_dict["lm_head.weight"] = state_dict["transformer.wte.weight"]`):
 * Llama-3.2's head is a second vocab x hidden matrix there, not the embedding.
 */
function untied(arch: ModelArch): ModelArch {
  if (!arch.tieWordEmbeddings) return arch
  const head = arch.vocabSize * arch.hiddenSize
  return { ...arch, tieWordEmbeddings: false, lmHeadParams: head, params: arch.params + head }
}

/**
 * The row's code path. Every lit-gpt row scored here ran `--precision bf16-true`, which converts the whole model,
 * LoRA A/B included, to bf16 (lightning fabric HalfPrecision.convert_module: module.to(torch.bfloat16), applied by
 * fabric.setup): 2-byte adapters, their gradients and AdamW states, and a bf16 adapter branch.
 */
function pathOf(spec: Spec | Bound): PlanPath {
  const base = 'path' in spec ? (spec.path ?? HEADROOM_PATH) : HEADROOM_PATH
  return spec.litgpt ? { ...base, adapterBytesPerParam: BYTES_PER_ELEMENT.bf16, chunkedHeadLoop: LITGPT_LOOP } : base
}

function inputFor(spec: { model: string; input: Partial<PlanInput>; litgpt?: boolean }): PlanInput {
  const arch = spec.litgpt ? litgptArch(model(spec.model)) : model(spec.model)
  const targets = spec.litgpt && Array.isArray(spec.input.targets)
    ? [...new Set(spec.input.targets.map((t) => (['q_proj', 'k_proj', 'v_proj'].includes(t) ? 'qkv_proj' : t)))]
    : spec.input.targets
  return {
    model: arch,
    phase: 'train', method: 'lora', dtype: 'bf16', quant: 'none', doubleQuant: false, rank: 8, alpha: 16, loraDropout: 0,
    targets: QV, batch: 1, seq: 512, gradientCheckpointing: false, attention: 'sdpa', optimizer: 'adamw',
    gpu: null, gpus: 1, parallelism: 'ddp', device: 'cuda',
    // None of these sources set expandable_segments; it only matters for reserved/device rows.
    expandableSegments: false,
    ...spec.input,
    ...(targets ? { targets } : {}),
  }
}

/** Which code path measured the row: the planner models transformers + peft + bitsandbytes. */
function groupOf(row: number, method: string): string {
  if (row <= 5) return 'seed (KAITO, transformers + peft)'
  if (row <= 42) return 'torchtune'
  if (row <= 66) return method === 'qlora' ? 'lit-gpt qlora (no peft k-bit preparation)' : 'lit-gpt lora'
  return method === 'qlora' ? 'litgpt config hub qlora (no peft k-bit preparation)' : 'litgpt config hub lora'
}

type Scored = { row: number; group: string; model: string; method: string; measure: Measure; moment: string; measuredBytes: number; predictedBytes: number; errorPct: number; calibration: boolean; note?: string; breakdown: Record<string, number> }
type Checked = { row: number; model: string; bound: string; predictedBytes: number; pass: boolean; note: string }
type Skipped = { row: number; model: string; reason: string }

const rows = parseCsv(readFileSync(csvPath, 'utf8'))
const scored: Scored[] = []
const checked: Checked[] = []
const skipped: Skipped[] = []
rows.forEach((r, i) => {
  const n = i + 1
  const spec = SPECS[n]
  const name = r.model
  if (spec === undefined) return skipped.push({ row: n, model: name, reason: 'no interpretation written for this row' })
  if (typeof spec === 'string') return skipped.push({ row: n, model: name, reason: spec })
  const dropped = (spec.input.loraDropout ?? 0) > 0 ? DROPOUT_SOURCES.find((d) => n >= d.rows[0] && n <= d.rows[1]) : undefined
  if ((spec.input.loraDropout ?? 0) > 0 && !dropped) throw new Error(`row ${n} plans lora_dropout ${spec.input.loraDropout} with no source for it`)
  const note = [spec.note, dropped?.source].filter(Boolean).join('; ') || undefined
  const t = memoryTerms(inputFor(spec), pathOf(spec))
  if ('above' in spec) {
    return checked.push({ row: n, model: name, bound: `> ${spec.above / 1e9} GB`, predictedBytes: t.peakBytes, pass: t.peakBytes > spec.above, note: note ?? '' })
  }
  const measuredBytes = Number(r.measured_peak_gb) * spec.unit
  if (!Number.isFinite(measuredBytes)) throw new Error(`row ${n}: measured_peak_gb ${r.measured_peak_gb} is not a number`)
  // max_memory_reserved = allocated + allocator slack: the device view without the CUDA context.
  const predictedBytes = spec.measure === 'allocated' ? t.peakAllocatedBytes : spec.measure === 'reserved' ? t.peakBytes - CUDA_CONTEXT_BYTES : t.peakBytes
  scored.push({
    row: n, group: groupOf(n, r.method.split(' ')[0]), model: name, method: r.method.split(' ')[0], measure: spec.measure, moment: t.moment, measuredBytes, predictedBytes,
    errorPct: (100 * (predictedBytes - measuredBytes)) / measuredBytes, calibration: spec.calibration ?? false, note, breakdown: t.breakdown,
  })
})

function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b)
  if (s.length === 0) return NaN
  const k = (s.length - 1) * p
  const lo = Math.floor(k)
  const hi = Math.ceil(k)
  return s[lo] + (s[hi] - s[lo]) * (k - lo)
}

const abs = scored.map((s) => Math.abs(s.errorPct))
const heldOut = scored.filter((s) => !s.calibration).map((s) => Math.abs(s.errorPct))
const groups = [...new Set(scored.map((s) => s.group))].map((group) => {
  const errs = scored.filter((s) => s.group === group).map((s) => Math.abs(s.errorPct))
  const signed = scored.filter((s) => s.group === group).map((s) => s.errorPct)
  return { group, rows: errs.length, medianAbsErrorPct: percentile(errs, 0.5), medianSignedErrorPct: percentile(signed, 0.5) }
})
const summary = {
  csv: csvPath,
  scoredRows: scored.length,
  boundRows: checked.length,
  skippedRows: skipped.length,
  medianAbsErrorPct: percentile(abs, 0.5),
  p90AbsErrorPct: percentile(abs, 0.9),
  medianAbsErrorPctExcludingCalibrationRows: percentile(heldOut, 0.5),
  p90AbsErrorPctExcludingCalibrationRows: percentile(heldOut, 0.9),
  boundsPassed: checked.filter((c) => c.pass).length,
  groups,
}

const pad = (s: string | number, n: number) => String(s).padEnd(n)
const gb = (b: number) => (b / 1e9).toFixed(2)
console.log(`${pad('row', 4)}${pad('model', 38)}${pad('method', 8)}${pad('measure', 10)}${pad('meas GB', 9)}${pad('pred GB', 9)}error`)
for (const s of scored) {
  console.log(`${pad(s.row, 4)}${pad(s.model.slice(0, 37), 38)}${pad(s.method, 8)}${pad(s.measure, 10)}${pad(gb(s.measuredBytes), 9)}${pad(gb(s.predictedBytes), 9)}${s.errorPct >= 0 ? '+' : ''}${s.errorPct.toFixed(1)}%${s.calibration ? ' (calibration)' : ''}`)
}
console.log('\nbounds:')
for (const c of checked) console.log(`${pad(c.row, 4)}${pad(c.model.slice(0, 37), 38)}${pad(c.bound, 10)}predicted ${gb(c.predictedBytes)} GB  ${c.pass ? 'pass' : 'FAIL'}  (${c.note})`)
console.log(`\nskipped ${skipped.length} rows (reasons in the JSON)`)
console.log(`\nscored ${summary.scoredRows} rows: median |error| ${summary.medianAbsErrorPct.toFixed(1)}%, p90 ${summary.p90AbsErrorPct.toFixed(1)}%`)
console.log(`excluding calibration rows: median ${summary.medianAbsErrorPctExcludingCalibrationRows.toFixed(1)}%, p90 ${summary.p90AbsErrorPctExcludingCalibrationRows.toFixed(1)}%`)
console.log(`bounds: ${summary.boundsPassed}/${summary.boundRows} pass`)
console.log('\nby source:')
for (const g of groups) console.log(`  ${pad(g.group, 50)}${pad(g.rows, 4)}median |error| ${g.medianAbsErrorPct.toFixed(1)}%  (signed median ${g.medianSignedErrorPct >= 0 ? '+' : ''}${g.medianSignedErrorPct.toFixed(1)}%)`)

mkdirSync(join(root, 'bench', 'results'), { recursive: true })
writeFileSync(join(root, 'bench', 'results', 'plan-accuracy.json'), `${JSON.stringify({ summary, scored, checked, skipped }, null, 2)}\n`)
