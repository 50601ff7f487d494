/**
 * Text for the pipelines: the T5 tokenizer (SentencePiece unigram from spiece.model, or a Hugging Face
 * tokenizer.json) with T5Tokenizer(legacy=True) semantics, and Open-Sora's prompt cleaning
 * (docs/guides/text-encoding.md).
 */
export { openT5Tokenizer, type EncodedBatch, type EncodeOptions, type T5Tokenizer, type T5TokenizerInfo } from './t5-tokenizer.ts';
export { loadSentencePiece, readSentencePiece, SentencePieceProcessor } from './sentencepiece.ts';
export { openClipTokenizer, clipTokenizerFromFiles, clipCleanText, type ClipTokenizer, type ClipTokenizerInfo, type ClipSpecialTokens } from './clip-tokenizer.ts';
export { basicClean, cleanCaption, promptV2, releaseTextSettings, textPreprocessing } from './clean.ts';
export { TextError, type TextCode } from './errors.ts';
