//! `GET /`: one self-contained page (no external resources): choose, drop or paste an image,
//! see it with the top classes as bars, and the model's name, classes and accuracy.

pub const PAGE: &str = r##"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>graft serve</title>
<style>
body{font:15px/1.45 system-ui,sans-serif;max-width:760px;margin:2em auto;padding:0 1em;color:#1d2330}
h1{font-size:1.4em;margin:.2em 0}.muted{color:#667}#drop{border:2px dashed #9ab;border-radius:10px;padding:1.6em;text-align:center;margin:1em 0}
#drop.over{background:#eef5ff;border-color:#36c}#preview{max-width:100%;max-height:220px;display:none;margin:1em auto;border-radius:6px}
.bar{display:flex;align-items:center;margin:.35em 0}.bar .name{width:40%;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.bar .track{flex:1;background:#eef0f4;border-radius:4px;height:1.2em;margin:0 .6em}.bar .fill{background:#3a7bd5;height:100%;border-radius:4px}
.bar .pct{width:4.5em;text-align:right;font-variant-numeric:tabular-nums}#error{color:#b00020}input[type=password]{width:14em}
</style></head><body>
<h1>graft: <span id="model">loading…</span></h1>
<p class="muted" id="about"></p>
<div id="drop">Drop an image here, paste one, or <input type="file" id="file" accept="image/*"></div>
<p class="muted">API key (only if the server asks for one): <input type="password" id="key" autocomplete="off"></p>
<img id="preview" alt="the image sent">
<p id="error"></p>
<div id="result"></div>
<script>
const $ = id => document.getElementById(id);
let name = null;
fetch('/v2/health/ready').then(() => fetch('/v2/models')).then(r => r.json()).then(m => {
  name = m.name;
  $('model').textContent = m.name;
  const p = m.parameters, acc = p.val_accuracy == null ? '' : ', validation accuracy ' + (100 * p.val_accuracy).toFixed(1) + '%';
  $('about').textContent = p.architecture + ' (' + p.strategy + ')' + acc + '. Classes: ' + p.classes.slice(0, 20).join(', ') + (p.classes.length > 20 ? ', … (' + p.classes.length + ')' : '');
}).catch(e => { $('error').textContent = 'cannot read the model: ' + e; });
function send(blob) {
  $('error').textContent = ''; $('result').innerHTML = '';
  $('preview').src = URL.createObjectURL(blob); $('preview').style.display = 'block';
  const headers = {'Content-Type': blob.type || 'application/octet-stream'};
  if ($('key').value) headers['Authorization'] = 'Bearer ' + $('key').value;
  fetch('/v1/predict?top_k=5', {method: 'POST', body: blob, headers}).then(async r => {
    const body = await r.json();
    if (!r.ok) throw new Error(body.error || r.status);
    $('result').innerHTML = body.map(l => '<div class="bar"><span class="name label">' + l.label.replace(/[&<>]/g, c => ({'&':'&amp;','<':'&lt;','>':'&gt;'}[c])) +
      '</span><span class="track"><span class="fill" style="display:block;width:' + (100 * l.score).toFixed(1) + '%"></span></span><span class="pct">' +
      (100 * l.score).toFixed(1) + '%</span></div>').join('');
  }).catch(e => { $('error').textContent = String(e.message || e); });
}
$('file').addEventListener('change', e => { if (e.target.files[0]) send(e.target.files[0]); });
const drop = $('drop');
drop.addEventListener('dragover', e => { e.preventDefault(); drop.classList.add('over'); });
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', e => { e.preventDefault(); drop.classList.remove('over'); if (e.dataTransfer.files[0]) send(e.dataTransfer.files[0]); });
document.addEventListener('paste', e => { const f = [...e.clipboardData.files][0]; if (f) send(f); });
</script></body></html>
"##;
