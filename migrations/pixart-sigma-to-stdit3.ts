/**
 * Example migration script (hand-written): PixArt-Σ → STDiT3's spatial branch, as Open-Sora v1.2's
 * reparameter() did it. The same transition is the built-in `pixart-sigma-to-stdit3`; this file
 * shows the script form. Evaluate it with `sorac migrate plan migrations/pixart-sigma-to-stdit3.ts`,
 * apply with `sorac migrate apply migrations/pixart-sigma-to-stdit3.ts --in PixArt-Sigma-XL-2-512-MS.safetensors --out stdit3-init.safetensors`.
 */
import { migration } from 'sorac/migrate';

export default migration({ name: 'pixart-sigma-to-stdit3', description: 'PixArt-Σ weights initialise STDiT3 spatial blocks' }, (m) =>
  m
    // Conv2d patch embed [1152,4,2,2] → Conv3d [1152,4,1,2,2]
    .unsqueeze('x_embedder.proj.weight', 2)
    // every "blocks.N." becomes "spatial_blocks.N." (segment-anchored: spatial_blocks is not renamed twice)
    .renamePattern('blocks.(\\d+).', 'spatial_blocks.$1.')
    // PixArt-Σ keeps its position table in the checkpoint; STDiT3 computes it on the fly
    .drop('pos_embed'),
);
