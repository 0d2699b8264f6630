# syntax=docker/dockerfile:1
# Every image, from one build stage, built from the repository root:
#
#   docker build --target operator -t ghcr.io/clockify-addons/clockify-operator:0.1.0 .
#   docker build --target addons   -t ghcr.io/clockify-addons/clockify-addons:0.1.0 .
#   docker build --target backup --build-arg PG_MAJOR=17 \
#     -t ghcr.io/clockify-addons/clockify-addons:0.1.0-backup .
#
# operator, addons: a static binary (musl: Alpine's Rust target) on distroless static: no
#          shell, no package manager, user 65532. The add-ons are built with the `dist` profile
#          (size-optimised, whole-program LTO: fewer resident pages, no slower; Cargo.toml) and
#          the code they run laid out together (scripts/hot-symbols.sh).
# backup:  the clockify-addons binary plus the PostgreSQL client (pg_dump, pg_restore, psql) for
#          the operator's backup and restore Jobs. Build it with PG_MAJOR set to your database
#          server's major version: pg_dump must not be older than the server, and the SQL a
#          restore applies must not be newer than it. Point spec.backup.image at it.
ARG RUST_VERSION=1.95
ARG ALPINE_VERSION=3.22
ARG PG_MAJOR=17

FROM rust:${RUST_VERSION}-alpine${ALPINE_VERSION} AS build
RUN apk add --no-cache build-base bash
WORKDIR /src
COPY . .
# The add-ons link with rust-lld, the functions a serving pod runs laid out together
# (scripts/link-ordered.sh, services/clockify-addons/hot-symbols.txt), as build-static.sh does.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p clockify-operator \
    && CLOCKIFY_GCC_LD="$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/bin/gcc-ld" \
       CARGO_TARGET_X86_64_UNKNOWN_LINUX_MUSL_LINKER=/src/scripts/link-ordered.sh \
       cargo build --profile dist --locked -p clockify-addons \
    && cp target/release/clockify-operator target/release/kubectl-clockify target/dist/clockify-addons / \
    && /clockify-operator --version && /clockify-addons --version && /kubectl-clockify --version

FROM gcr.io/distroless/static-debian12:nonroot AS operator
COPY --from=build /clockify-operator /usr/local/bin/clockify-operator
# The kubectl plugin, to copy out: docker cp $(docker create IMAGE):/usr/local/bin/kubectl-clockify .
COPY --from=build /kubectl-clockify /usr/local/bin/kubectl-clockify
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/clockify-operator"]
CMD ["run"]

FROM alpine:${ALPINE_VERSION} AS backup
ARG PG_MAJOR
RUN apk add --no-cache "postgresql${PG_MAJOR}-client" ca-certificates \
    && adduser -D -H -u 65532 -g nonroot nonroot \
    && pg_dump --version && pg_restore --version && psql --version
COPY --from=build /clockify-addons /usr/local/bin/clockify-addons
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/clockify-addons"]
CMD ["backup", "--help"]

# Last, so a plain `docker build .` gives the add-on image.
FROM gcr.io/distroless/static-debian12:nonroot AS addons
COPY --from=build /clockify-addons /usr/local/bin/clockify-addons
USER 65532:65532
EXPOSE 8080 9090
ENTRYPOINT ["/usr/local/bin/clockify-addons"]
