/** The vae_v13 golden's nested constructor kwargs, flattened to examples/vae_v13.sora's config keys. */
import { goldenMeta } from './parity.ts';

export function v13Config(cfg = 'a'): Record<string, unknown> {
  const kw = goldenMeta('vae_v13', cfg).constructor_kwargs;
  const enc = kw.OpenSoraVAE_V1_3_PiplineConfig.encoder;
  const dec = kw.OpenSoraVAE_V1_3_PiplineConfig.decoder;
  const pipe = kw.OpenSoraVAE_V1_3_Pipline;
  return {
    z_channels: enc.z_channels,
    ch: enc.ch,
    ch_mult: enc.ch_mult,
    num_res_blocks: enc.num_res_blocks,
    in_channels: enc.in_channels,
    out_ch: dec.out_ch,
    double_z: enc.double_z,
    down_sampling_layer: enc.down_sampling_layer,
    temporal_up_layers: dec.temporal_up_layers,
    ...pipe,
  };
}
