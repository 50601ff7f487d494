// The VS Code client of `sorac lsp`: starts the server for .sora files in the workspace and restarts it
// when `sorac.path` changes. Highlighting is the TextMate grammar in syntaxes/; everything else
// (diagnostics, hover, definition, references, completion, formatting, outline) comes from the server.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const vscode = require('vscode');
const { LanguageClient } = require('vscode-languageclient/node');

let client;

/** The sorac command: the setting, else the workspace's node_modules/.bin/sorac, else `sorac` on PATH. */
function soracCommand(folder) {
  const configured = vscode.workspace.getConfiguration('sorac').get('path');
  if (configured) return configured;
  if (folder) {
    const local = path.join(folder, 'node_modules', '.bin', process.platform === 'win32' ? 'sorac.cmd' : 'sorac');
    if (fs.existsSync(local)) return local;
  }
  return 'sorac';
}

function start() {
  const folder = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
  const command = soracCommand(folder);
  const run = { command, args: ['lsp', '--stdio'], options: folder ? { cwd: folder } : {} };
  client = new LanguageClient(
    'sorac',
    'sorac',
    { run, debug: run },
    {
      documentSelector: [{ scheme: 'file', language: 'sora' }],
      // the workspace's config (docs/guides/editor.md): the server re-reads it when it changes
      synchronize: { fileEvents: vscode.workspace.createFileSystemWatcher('**/sorac.json') },
      initializationOptions: { debounceMs: vscode.workspace.getConfiguration('sorac').get('debounceMs') },
    },
  );
  return client.start();
}

function activate(context) {
  context.subscriptions.push(
    vscode.workspace.onDidChangeConfiguration(async (e) => {
      if (!e.affectsConfiguration('sorac')) return;
      if (client) await client.stop();
      await start();
    }),
  );
  return start();
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate, soracCommand };
