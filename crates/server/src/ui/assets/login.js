// Exchanges the admin token for a session cookie; the token leaves the page afterwards.
'use strict';
(function () {
  const form = document.getElementById('login');
  const input = document.getElementById('token');
  const error = document.getElementById('error');
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.hidden = true;
    const button = form.querySelector('button');
    button.disabled = true;
    try {
      const answer = await fetch('/ui/api/login', {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
        body: JSON.stringify({ token: input.value }),
      });
      if (answer.ok) {
        input.value = '';
        location.replace('/');
        return;
      }
      const body = await answer.json().catch(() => ({}));
      error.textContent = 'Login refused: ' + (body.error || 'HTTP ' + answer.status);
    } catch (e) {
      error.textContent = 'Login failed: ' + e.message;
    } finally {
      button.disabled = false;
    }
    error.hidden = false;
    input.select();
    input.focus();
  });
})();
