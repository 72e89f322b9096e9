"""The Engine API 1.41 endpoints capsized does not implement: each answers 501 with a JSON message.

:data:`ENGINE_API` is the Engine API 1.41 reference's route table (method, path pattern, the docker
command that calls it). :func:`routes` gives an aiohttp handler for every one of them; the server
registers them *after* the implemented routes, so an implemented endpoint always wins and every
other documented endpoint answers ``501 {"message": "capsized does not implement GET
/containers/{id}/export (docker export)"}`` instead of a 404 or 405. A path that is not part of the
Engine API at all keeps Docker's ``404 page not found``. Exception: :data:`NOT_FOUND`.
"""

from __future__ import annotations

from aiohttp import web

from runtime.errors import NotFound, Unimplemented

#: (method, path pattern, docker command) for every endpoint of the Engine API 1.41 reference.
ENGINE_API = [
    # containers
    ("GET", "/containers/json", "docker ps"),
    ("POST", "/containers/create", "docker create"),
    ("GET", "/containers/{id}/json", "docker inspect"),
    ("GET", "/containers/{id}/top", "docker top"),
    ("GET", "/containers/{id}/logs", "docker logs"),
    ("GET", "/containers/{id}/changes", "docker diff"),
    ("GET", "/containers/{id}/export", "docker export"),
    ("GET", "/containers/{id}/stats", "docker stats"),
    ("POST", "/containers/{id}/resize", "docker resize"),
    ("POST", "/containers/{id}/start", "docker start"),
    ("POST", "/containers/{id}/stop", "docker stop"),
    ("POST", "/containers/{id}/restart", "docker restart"),
    ("POST", "/containers/{id}/kill", "docker kill"),
    ("POST", "/containers/{id}/update", "docker update"),
    ("POST", "/containers/{id}/rename", "docker rename"),
    ("POST", "/containers/{id}/pause", "docker pause"),
    ("POST", "/containers/{id}/unpause", "docker unpause"),
    ("POST", "/containers/{id}/attach", "docker attach"),
    ("GET", "/containers/{id}/attach/ws", "attach over a websocket"),
    ("POST", "/containers/{id}/wait", "docker wait"),
    ("DELETE", "/containers/{id}", "docker rm"),
    ("HEAD", "/containers/{id}/archive", "docker cp"),
    ("GET", "/containers/{id}/archive", "docker cp"),
    ("PUT", "/containers/{id}/archive", "docker cp"),
    ("POST", "/containers/prune", "docker container prune"),
    # images
    ("GET", "/images/json", "docker images"),
    ("POST", "/build", "docker build"),
    ("POST", "/build/prune", "docker builder prune"),
    ("POST", "/images/create", "docker pull / docker import"),
    ("GET", "/images/{name:.+}/json", "docker image inspect"),
    ("GET", "/images/{name:.+}/history", "docker history"),
    ("POST", "/images/{name:.+}/push", "docker push"),
    ("POST", "/images/{name:.+}/tag", "docker tag"),
    ("DELETE", "/images/{name:.+}", "docker rmi"),
    ("GET", "/images/search", "docker search"),
    ("POST", "/images/prune", "docker image prune"),
    ("POST", "/commit", "docker commit"),
    ("GET", "/images/{name:.+}/get", "docker save"),
    ("GET", "/images/get", "docker save"),
    ("POST", "/images/load", "docker load"),
    # networks
    ("GET", "/networks", "docker network ls"),
    ("GET", "/networks/{id}", "docker network inspect"),
    ("DELETE", "/networks/{id}", "docker network rm"),
    ("POST", "/networks/create", "docker network create"),
    ("POST", "/networks/{id}/connect", "docker network connect"),
    ("POST", "/networks/{id}/disconnect", "docker network disconnect"),
    ("POST", "/networks/prune", "docker network prune"),
    # volumes
    ("GET", "/volumes", "docker volume ls"),
    ("POST", "/volumes/create", "docker volume create"),
    ("GET", "/volumes/{name}", "docker volume inspect"),
    ("DELETE", "/volumes/{name}", "docker volume rm"),
    ("POST", "/volumes/prune", "docker volume prune"),
    # exec
    ("POST", "/containers/{id}/exec", "docker exec"),
    ("POST", "/exec/{id}/start", "docker exec"),
    ("POST", "/exec/{id}/resize", "docker exec"),
    ("GET", "/exec/{id}/json", "docker exec"),
    # swarm
    ("GET", "/swarm", "docker swarm"),
    ("POST", "/swarm/init", "docker swarm init"),
    ("POST", "/swarm/join", "docker swarm join"),
    ("POST", "/swarm/leave", "docker swarm leave"),
    ("POST", "/swarm/update", "docker swarm update"),
    ("GET", "/swarm/unlockkey", "docker swarm unlock-key"),
    ("POST", "/swarm/unlock", "docker swarm unlock"),
    ("GET", "/nodes", "docker node ls"),
    ("GET", "/nodes/{id}", "docker node inspect"),
    ("DELETE", "/nodes/{id}", "docker node rm"),
    ("POST", "/nodes/{id}/update", "docker node update"),
    ("GET", "/services", "docker service ls"),
    ("POST", "/services/create", "docker service create"),
    ("GET", "/services/{id}", "docker service inspect"),
    ("DELETE", "/services/{id}", "docker service rm"),
    ("POST", "/services/{id}/update", "docker service update"),
    ("GET", "/services/{id}/logs", "docker service logs"),
    ("GET", "/tasks", "docker service ps"),
    ("GET", "/tasks/{id}", "docker inspect"),
    ("GET", "/tasks/{id}/logs", "docker service logs"),
    ("GET", "/secrets", "docker secret ls"),
    ("POST", "/secrets/create", "docker secret create"),
    ("GET", "/secrets/{id}", "docker secret inspect"),
    ("DELETE", "/secrets/{id}", "docker secret rm"),
    ("POST", "/secrets/{id}/update", "docker secret update"),
    ("GET", "/configs", "docker config ls"),
    ("POST", "/configs/create", "docker config create"),
    ("GET", "/configs/{id}", "docker config inspect"),
    ("DELETE", "/configs/{id}", "docker config rm"),
    ("POST", "/configs/{id}/update", "docker config update"),
    # plugins
    ("GET", "/plugins", "docker plugin ls"),
    ("GET", "/plugins/privileges", "docker plugin install"),
    ("POST", "/plugins/pull", "docker plugin install"),
    ("GET", "/plugins/{name:.+}/json", "docker plugin inspect"),
    ("DELETE", "/plugins/{name:.+}", "docker plugin rm"),
    ("POST", "/plugins/{name:.+}/enable", "docker plugin enable"),
    ("POST", "/plugins/{name:.+}/disable", "docker plugin disable"),
    ("POST", "/plugins/{name:.+}/upgrade", "docker plugin upgrade"),
    ("POST", "/plugins/create", "docker plugin create"),
    ("POST", "/plugins/{name:.+}/push", "docker plugin push"),
    ("POST", "/plugins/{name:.+}/set", "docker plugin set"),
    # system
    ("POST", "/auth", "docker login"),
    ("GET", "/info", "docker info"),
    ("GET", "/version", "docker version"),
    ("GET", "/_ping", "docker version"),
    ("HEAD", "/_ping", "docker version"),
    ("GET", "/events", "docker events"),
    ("GET", "/system/df", "docker system df"),
    ("GET", "/distribution/{name:.+}/json", "docker pull"),
    ("POST", "/session", "docker build (BuildKit session)"),
]


def _display(path: str) -> str:
    """``/images/{name:.+}/json`` -> ``/images/{name}/json`` (the reference's spelling)."""
    return path.replace(":.+}", "}")


#: Lookups of one object of a kind capsized never has: 404 with dockerd's not-found text rather
#: than 501, so that ``docker inspect NAME`` (which tries container, image, network, volume,
#: plugin in turn and goes on after a 404 only) ends with ``No such object: NAME``.
NOT_FOUND = {
    ("GET", "/networks/{id}"): "network {} not found",
    ("GET", "/volumes/{name}"): "get {}: no such volume",
    ("GET", "/plugins/{name:.+}/json"): 'plugin "{}" not found',
}


def _handler(method: str, path: str, command: str):
    message = f"capsized does not implement {method} {_display(path)} ({command})"
    missing = NOT_FOUND.get((method, path))

    async def not_implemented(request: web.Request):
        if missing is not None:
            name = request.match_info.get("id") or request.match_info.get("name") or ""
            raise NotFound(missing.format(name))
        raise Unimplemented(message)

    return not_implemented


def routes(implemented: list[tuple]) -> list[tuple]:
    """(method, path, handler) answering 501 for every :data:`ENGINE_API` route not in *implemented*
    (the (method, path, handler) routes capsized serves)."""
    have = {(m, _display(p)) for m, p, _ in implemented}
    return [(m, p, _handler(m, p, cmd)) for m, p, cmd in ENGINE_API if (m, _display(p)) not in have]


def unimplemented(implemented: list[tuple]) -> list[str]:
    """``METHOD /path (command)`` for the routes :func:`routes` answers 501 (for the docs/tests)."""
    have = {(m, _display(p)) for m, p, _ in implemented}
    return [f"{m} {_display(p)} ({cmd})" for m, p, cmd in ENGINE_API if (m, _display(p)) not in have]
