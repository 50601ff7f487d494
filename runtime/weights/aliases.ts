/**
 * Tied weights: a keymap entry with `alias` names the same tensor as another key (e.g. T5's
 * `encoder.embed_tokens.weight` = `shared.weight`). Exporters keep either name (HF safetensors keep
 * only `shared.weight`). This view fills whichever of the two a checkpoint lacks from the other, so
 * the strict load report and the graph (which reads the target key) both see the tensor.
 */
import type { Keymap } from '../../core/keymap.ts';
import type { StoredTensor, TensorStore } from './store.ts';

export function withAliases<S extends Pick<TensorStore, 'tensors'> & Partial<Pick<TensorStore, 'notes'>>>(keymap: Keymap, store: S): S {
  const tensors = new Map<string, StoredTensor>(store.tensors);
  const notes = [...(store.notes ?? [])];
  let changed = false;
  for (const [key, e] of Object.entries(keymap.tensors)) {
    if (!e.alias) continue;
    const a = tensors.get(key);
    const t = tensors.get(e.alias);
    if (a && !t) {
      tensors.set(e.alias, a);
      notes.push(`tied weights: "${e.alias}" read from "${key}"`);
      changed = true;
    } else if (t && !a) {
      tensors.set(key, t);
      changed = true;
    }
  }
  if (!changed) return store;
  return Object.assign(Object.create(Object.getPrototypeOf(store) as object) as S, store, { tensors, notes });
}
