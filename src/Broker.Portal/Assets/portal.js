// Broker portal: the only script. No dependencies; served from the app (CSP: script-src 'self').
'use strict';
(function () {
  function status(form, text) {
    var el = form.querySelector('[data-status]');
    if (el) { el.textContent = text; }
  }

  // Passkey forms: fetch the WebAuthn options from the page (antiforgery token travels in the
  // form body), run the browser ceremony, put the credential JSON into the form and submit it.
  async function runPasskey(form) {
    var mode = form.dataset.passkey;
    if (!window.PublicKeyCredential || !PublicKeyCredential.parseCreationOptionsFromJSON) {
      status(form, 'This browser does not support passkeys. Use an up-to-date browser or your authenticator app.');
      return;
    }
    status(form, 'Waiting for your passkey…');
    var response = await fetch(form.dataset.optionsUrl, { method: 'POST', body: new FormData(form), credentials: 'same-origin' });
    if (!response.ok) {
      // 403 with a location: the page needs a fresh passkey or authenticator check first (step-up).
      var next = response.status === 403 ? await response.json().catch(function () { return null; }) : null;
      if (next && typeof next.location === 'string' && /^\/[^\/\\]/.test(next.location)) { window.location.assign(next.location); return; }
      status(form, 'Could not start (' + response.status + '). Reload the page and try again.');
      return;
    }
    var options = await response.json();
    var credential;
    try {
      credential = mode === 'create'
        ? await navigator.credentials.create({ publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(options) })
        : await navigator.credentials.get({ publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(options) });
    } catch (e) {
      status(form, 'The passkey prompt was cancelled or is not allowed here (' + e.name + ').');
      return;
    }
    form.querySelector('input[name="Credential"]').value = JSON.stringify(credential);
    form.dataset.ready = '1';
    form.submit();
  }

  document.querySelectorAll('form[data-passkey]').forEach(function (form) {
    form.addEventListener('submit', function (event) {
      if (form.dataset.ready === '1') { return; }
      event.preventDefault();
      runPasskey(form).catch(function (e) { status(form, 'Something went wrong: ' + e.message); });
    });
  });

  // The outcome goes to the live region beside the button (role=status), so a screen reader says
  // it; the button keeps its name, which is what a keyboard user lands on again.
  document.querySelectorAll('[data-copy]').forEach(function (button) {
    var live = document.querySelector('[data-copy-status="' + button.dataset.copy + '"]');
    function say(text) {
      if (live) { live.textContent = text; } else { button.textContent = text; }
    }
    button.addEventListener('click', async function () {
      var target = document.getElementById(button.dataset.copy);
      var text = target.innerText.trim();
      try {
        await navigator.clipboard.writeText(text);
        say('Copied to the clipboard.');
      } catch (e) {
        var range = document.createRange();
        range.selectNodeContents(target);
        var selection = window.getSelection();
        selection.removeAllRanges();
        selection.addRange(range);
        say('Selected: press Ctrl+C to copy.');
      }
    });
  });

  document.querySelectorAll('[data-suggest]').forEach(function (button) {
    button.addEventListener('click', function () {
      var input = document.getElementById(button.dataset.target);
      input.value = button.dataset.suggest;
      input.focus();
    });
  });

  // A table's box has tabindex="0" in the markup so that, without this script, columns out of view
  // can still be scrolled to with the keyboard (WCAG 2.1.1). With nothing to scroll (the cards on a
  // phone, a table that fits) that is a Tab stop which does nothing, so the box leaves the Tab order
  // until its table overflows again. -1 rather than no tabindex: a box that has the focus when the
  // window widens keeps it. The named region stays: it is still a landmark to jump to.
  var boxes = document.querySelectorAll('.table-wrap[tabindex]');
  function fit(box) {
    var scrolls = /^(auto|scroll)$/.test(getComputedStyle(box).overflowX) && box.scrollWidth > box.clientWidth;
    box.tabIndex = scrolls ? 0 : -1;
  }
  if (boxes.length && window.ResizeObserver) {
    // The box changes size with the window, its table also with what it shows (a limits form opened);
    // the first callback comes right after observe, so no separate first pass.
    var observer = new ResizeObserver(function () { boxes.forEach(fit); });
    boxes.forEach(function (box) {
      observer.observe(box);
      var table = box.querySelector('table');
      if (table) { observer.observe(table); }
    });
  }

  document.querySelectorAll('form[data-confirm]').forEach(function (form) {
    form.addEventListener('submit', function (event) {
      if (!window.confirm(form.dataset.confirm)) { event.preventDefault(); }
    });
  });
})();
