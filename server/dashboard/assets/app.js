document.getElementById('app').textContent='claude-route dashboard';
