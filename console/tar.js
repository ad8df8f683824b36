// A ustar archive of the files of a folder input (their relative paths without the folder's
// own name), for a template build's context.
const encoder = new TextEncoder();

function field(bytes, offset, text, length) {
  const data = encoder.encode(text);
  bytes.set(data.subarray(0, length), offset);
}

function octal(value, length) {
  return value.toString(8).padStart(length - 1, "0");
}

function header(path, size) {
  const block = new Uint8Array(512);
  let name = path;
  let prefix = "";
  if (encoder.encode(name).length > 100) {
    const cut = path.lastIndexOf("/", 154);
    prefix = path.slice(0, cut);
    name = path.slice(cut + 1);
  }
  field(block, 0, name, 100);
  field(block, 100, octal(0o644, 8), 8);
  field(block, 108, octal(0, 8), 8);
  field(block, 116, octal(0, 8), 8);
  field(block, 124, octal(size, 12), 12);
  field(block, 136, octal(Math.floor(Date.now() / 1000), 12), 12);
  field(block, 148, "        ", 8);
  block[156] = "0".charCodeAt(0);
  field(block, 257, "ustar", 6);
  field(block, 263, "00", 2);
  field(block, 345, prefix, 155);
  let sum = 0;
  for (const byte of block) sum += byte;
  field(block, 148, `${octal(sum, 7)}\0`, 8);
  return block;
}

export async function tarOf(files) {
  const parts = [];
  for (const file of files) {
    const path = (file.webkitRelativePath || file.name).split("/").slice(1).join("/") || file.name;
    const data = new Uint8Array(await file.arrayBuffer());
    parts.push(header(path, data.length), data, new Uint8Array((512 - (data.length % 512)) % 512));
  }
  parts.push(new Uint8Array(1024));
  const total = parts.reduce((n, p) => n + p.length, 0);
  const out = new Uint8Array(total);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}
