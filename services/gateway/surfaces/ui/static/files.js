// quern's web UI: uploads with a progress bar, on the files page and in the submit form (no build step).
// A file up to the gateway's single-PUT limit is posted to the gateway; a bigger one goes straight to
// the object store: announced with its sha256, its parts PUT to presigned URLs, then completed.
"use strict";

(function () {
  function csrf() {
    return document.body.dataset.csrf;
  }

  // One request with upload progress; resolves with the XMLHttpRequest once it has an answer.
  function send(method, url, body, headers, onProgress) {
    return new Promise((resolve, reject) => {
      const request = new XMLHttpRequest();
      request.open(method, url);
      for (const [name, value] of Object.entries(headers)) request.setRequestHeader(name, value);
      request.upload.addEventListener("progress", (event) => {
        if (event.lengthComputable) onProgress(event.loaded);
      });
      request.addEventListener("load", () => resolve(request));
      request.addEventListener("error", () => reject(new Error("the connection broke")));
      request.send(body);
    });
  }

  function answered(request, expected, what) {
    if (request.status !== expected) throw new Error(what + " answered " + request.status);
    return JSON.parse(request.responseText);
  }

  async function sha256(file) {
    const digest = await crypto.subtle.digest("SHA-256", await file.arrayBuffer());
    return Array.from(new Uint8Array(digest), (byte) => byte.toString(16).padStart(2, "0")).join("");
  }

  async function throughGateway(file, picker, progress) {
    const url = picker.dataset.uploadUrl + "?name=" + encodeURIComponent(file.name);
    const headers = { "X-CSRF-Token": csrf(), "Content-Type": file.type || "application/octet-stream" };
    return answered(await send("POST", url, file, headers, progress), 201, "the gateway");
  }

  async function straightToStore(file, picker, progress, say) {
    say("Checking " + file.name + "…");
    const announced = {
      name: file.name,
      size: file.size,
      sha256: await sha256(file),
      content_type: file.type || "application/octet-stream",
    };
    const json = { "X-CSRF-Token": csrf(), "Content-Type": "application/json" };
    const uploads = picker.dataset.uploadsUrl;
    const upload = answered(await send("POST", uploads, JSON.stringify(announced), json, () => {}), 201, "the gateway");
    say("Uploading " + file.name + " to the object store…");
    const here = uploads + "/" + encodeURIComponent(upload.id);
    try {
      await sendParts(file, upload, progress);
    } catch (error) {
      await send("POST", here + "/cancel", "", { "X-CSRF-Token": csrf() }, () => {}).catch(() => {});
      throw error;
    }
    say("Checking " + file.name + " in the object store…");
    return answered(await send("POST", here + "/complete", "", { "X-CSRF-Token": csrf() }, () => {}), 201, "the gateway");
  }

  // PUT the file to its presigned URL, or each part to its own, in order.
  async function sendParts(file, upload, progress) {
    let done = 0;
    const targets = upload.put ? [{ url: upload.put.url, size: file.size, headers: upload.put.headers }] : upload.parts;
    for (const target of targets) {
      const part = file.slice(done, done + target.size);
      const sent = await send("PUT", target.url, part, target.headers || {}, (loaded) => progress(done + loaded));
      if (sent.status !== 200) throw new Error("the object store answered " + sent.status);
      done += target.size;
    }
  }

  // Upload ``file`` as ``picker`` says, showing progress in ``box``; resolves with the stored file, or null.
  async function upload(file, picker, box) {
    const bar = box.querySelector("progress");
    const status = box.querySelector('[role="status"]');
    const say = (text) => {
      status.textContent = text;
    };
    const progress = (loaded) => {
      bar.value = file.size ? (100 * loaded) / file.size : 100;
    };
    bar.hidden = false;
    bar.value = 0;
    say("Uploading " + file.name + "…");
    try {
      const big = file.size > Number(picker.dataset.singlePutMax);
      const stored = big ? await straightToStore(file, picker, progress, say) : await throughGateway(file, picker, progress);
      bar.value = 100;
      say("Uploaded " + stored.name + ".");
      return stored;
    } catch (error) {
      say("The upload failed: " + error.message + ".");
      return null;
    }
  }

  function filesPage() {
    const box = document.getElementById("file-upload");
    if (!box) return;
    box.hidden = false;
    const picker = box.querySelector("input[type=file]");
    picker.addEventListener("change", async () => {
      const file = picker.files[0];
      if (!file) return;
      picker.disabled = true;
      const stored = await upload(file, picker, box);
      picker.disabled = false;
      if (stored) window.location.reload();
    });
  }

  // The submit form: a file chosen for an input is uploaded at once and then chosen for it.
  function submitPage() {
    const form = document.getElementById("submit-form");
    if (!form) return;
    const button = form.querySelector('button[type="submit"]');
    let uploading = 0;
    for (const picker of form.querySelectorAll("input[type=file][data-direct-upload]")) {
      const box = picker.closest(".upload");
      const select = document.getElementById(picker.dataset.uploadFor);
      box.hidden = false;
      picker.addEventListener("change", async () => {
        const file = picker.files[0];
        if (!file) return;
        uploading += 1;
        button.disabled = true;
        const stored = await upload(file, picker, box);
        if (stored) {
          const option = document.createElement("option");
          option.value = stored.id;
          option.textContent = stored.name + " (just uploaded)";
          select.prepend(option);
          select.value = stored.id;
        }
        uploading -= 1;
        button.disabled = uploading > 0;
      });
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    const page = document.body.dataset.page;
    if (page === "files") filesPage();
    if (page === "submit") submitPage();
  });
})();
