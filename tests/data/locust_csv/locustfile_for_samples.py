"""Small learner flow for capacity-pipeline test samples (target: /tmp/lt/server.py on 127.0.0.1)."""
from locust import HttpUser, between, task


class Learner(HttpUser):
    wait_time = between(0.1, 0.3)

    @task(5)
    def home(self):
        self.client.get("/")

    @task(3)
    def slow(self):
        self.client.get("/slow", name="/slow (recommendations)")

    @task(1)
    def missing(self):
        self.client.get("/missing")

    @task(2)
    def event(self):
        resp = self.client.post("/event", json={"type": "play"})
        if resp.status_code == 503:
            raise KeyError("ok")

    @task(1)
    def quiz(self):
        with self.client.get("/course/1", catch_response=True) as resp:
            if resp.elapsed.total_seconds() >= 0:
                resp.failure("quiz answer marked incorrect") if hash(resp.text) % 5 == 0 else resp.success()
