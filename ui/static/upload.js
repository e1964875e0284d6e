// Disk image upload with progress (releases page). Without JavaScript the form simply posts;
// with it, XMLHttpRequest's upload events drive a <progress> bar. The server answers the same
// either way: a redirect to the releases page with the image filled in, or the page with the
// refusal, which replaces this one.
(function () {
  var form = document.getElementById('upload-form');
  if (!form || !window.XMLHttpRequest || !window.FormData) return;
  var bar = document.getElementById('upload-progress');
  var status = document.getElementById('upload-status');
  form.addEventListener('submit', function (ev) {
    ev.preventDefault();
    var xhr = new XMLHttpRequest();
    var button = form.querySelector('button[type=submit]');
    button.disabled = true;
    bar.hidden = false;
    bar.value = 0;
    xhr.upload.addEventListener('progress', function (e) {
      if (!e.lengthComputable) return;
      bar.max = e.total;
      bar.value = e.loaded;
      var pct = Math.floor(100 * e.loaded / e.total);
      status.textContent = 'Uploading: ' + pct + ' % (' + Math.round(e.loaded / 1048576) + ' of ' + Math.round(e.total / 1048576) + ' MiB)';
    });
    xhr.upload.addEventListener('load', function () {
      status.textContent = 'Uploaded; Slate is storing the image and computing its digest…';
    });
    xhr.addEventListener('load', function () {
      if (xhr.status >= 200 && xhr.status < 300 && xhr.responseURL && xhr.responseURL.indexOf('/releases') >= 0 && xhr.responseURL.indexOf('uploaded=') >= 0) {
        window.location.assign(xhr.responseURL);
        return;
      }
      // A refusal: show Slate's page with the reason at its field.
      document.open();
      document.write(xhr.responseText);
      document.close();
    });
    xhr.addEventListener('error', function () {
      button.disabled = false;
      status.textContent = 'The upload was interrupted (network or server). Nothing was stored; try again.';
    });
    xhr.open('POST', form.action);
    xhr.send(new FormData(form));
  });
})();
