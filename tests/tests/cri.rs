//! `rkt-cri`, driven as the kubelet drives it: a gRPC client on its unix socket. The image
//! service end to end against a real registry; the runtime service's version; one server per
//! data dir; SIGTERM ends it and removes its socket. Pods and containers:
//! `tests/tests/cri_runtime.rs`.

use std::path::Path;
use std::process::{Child, Command};

use rkt_cri::proto::image_service_client::ImageServiceClient;
use rkt_cri::proto::runtime_service_client::RuntimeServiceClient;
use rkt_cri::proto::{
    AuthConfig, ImageFsInfoRequest, ImageSpec, ImageStatusRequest, ListImagesRequest,
    ListPodSandboxRequest, PullImageRequest, RemoveImageRequest, VersionRequest,
};
use rkt_tests::{images, TestCtx};

mod cri_common;
use cri_common::{accept_unsigned, channel};

fn server(ctx: &TestCtx, socket: &Path) -> Command {
    cri_common::server(ctx, socket, &[])
}

fn start(ctx: &TestCtx, socket: &Path) -> Child {
    cri_common::start(ctx, socket, &[])
}

fn spec(image: &str) -> Option<ImageSpec> {
    Some(ImageSpec {
        image: image.into(),
        ..Default::default()
    })
}

#[test]
fn the_image_service_pulls_lists_finds_and_removes_images() {
    let ctx = TestCtx::new();
    let reg = rkt_tests::registry::shared();
    images::push(images::busybox(), reg.http_addr(), "cri/busybox:one");
    images::push(images::busybox(), reg.http_addr(), "cri/busybox:two");
    let (one, two) = (
        format!("{}/cri/busybox:one", reg.http_addr()),
        format!("{}/cri/busybox:two", reg.http_addr()),
    );
    accept_unsigned(&ctx, &[reg.http_addr()]);
    let socket = ctx.root().join("cri.sock");
    let mut child = start(&ctx, &socket);

    // a second server on the same data dir is refused, the first keeps serving
    let o = server(&ctx, &ctx.root().join("other.sock"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(254), "{o:?}");

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let ch = channel(socket.clone()).await;
        let mut run = RuntimeServiceClient::new(ch.clone());
        let mut img = ImageServiceClient::new(ch);

        let v = run
            .version(VersionRequest::default())
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            (v.runtime_name.as_str(), v.runtime_api_version.as_str()),
            ("rkt", "v1")
        );
        // no pod yet (tests/tests/cri_runtime.rs drives pods and containers)
        let pods = run
            .list_pod_sandbox(ListPodSandboxRequest::default())
            .await
            .unwrap()
            .into_inner();
        assert!(pods.items.is_empty());

        // pull the same image under two tags: one image, two RepoTags, one RepoDigest
        let puller = img.clone();
        let pull = move |name: String| {
            let mut img = puller.clone();
            async move {
                img.pull_image(PullImageRequest {
                    image: spec(&name),
                    ..Default::default()
                })
                .await
                .map(|r| r.into_inner().image_ref)
            }
        };
        // the same registry under a name the policy does not accept: refused, nothing stored
        let port = reg.http_addr().rsplit(':').next().unwrap();
        let e = pull(format!("localhost:{port}/cri/busybox:one"))
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");
        assert!(e.message().contains("not trusted"), "{e:?}");
        let none = img
            .list_images(ListImagesRequest::default())
            .await
            .unwrap()
            .into_inner()
            .images;
        assert!(none.is_empty(), "{none:?}");

        let id = pull(one.clone()).await.unwrap();
        assert!(id.starts_with("sha256:"), "{id}");
        assert_eq!(pull(two.clone()).await.unwrap(), id);
        let list = img
            .list_images(ListImagesRequest::default())
            .await
            .unwrap()
            .into_inner()
            .images;
        assert_eq!(list.len(), 1, "{list:?}");
        let mut tags = list[0].repo_tags.clone();
        tags.sort();
        assert_eq!(tags, vec![one.clone(), two.clone()]);
        assert_eq!(list[0].repo_digests.len(), 1, "{list:?}");
        assert!(list[0].size > 0);

        // status by tag, id, id prefix and digest reference; a missing image is no error
        let asker = img.clone();
        let status = move |name: String| {
            let mut img = asker.clone();
            async move {
                img.image_status(ImageStatusRequest {
                    image: spec(&name),
                    verbose: true,
                })
                .await
                .map(|r| r.into_inner())
            }
        };
        let digest_ref = list[0].repo_digests[0].clone();
        for name in [one.clone(), id.clone(), id[..19].to_string(), digest_ref] {
            let s = status(name.clone()).await.unwrap();
            assert_eq!(s.image.map(|i| i.id), Some(id.clone()), "{name}");
            assert!(s.info.contains_key("info"), "{name}");
        }
        let s = status(format!("{}/cri/nothing:here", reg.http_addr()))
            .await
            .unwrap();
        assert!(s.image.is_none());

        // pulls that cannot succeed: a missing image, no image at all
        let e = pull(format!("{}/cri/nothing:here", reg.http_addr()))
            .await
            .unwrap_err();
        assert_ne!(e.code(), tonic::Code::Ok);
        let e = pull(String::new()).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);

        let fs = img
            .image_fs_info(ImageFsInfoRequest::default())
            .await
            .unwrap()
            .into_inner();
        let u = &fs.image_filesystems[0];
        assert!(u.used_bytes.unwrap().value > 0 && u.inodes_used.unwrap().value > 0);

        // remove by tag; again is no error; the image is gone
        for _ in 0..2 {
            img.remove_image(RemoveImageRequest { image: spec(&one) })
                .await
                .unwrap();
        }
        assert!(status(id.clone()).await.unwrap().image.is_none());
    });

    // a registry that wants credentials: refused without them, served with the request's
    let auth_reg = rkt_tests::registry::Registry::start(rkt_tests::registry::RegistryOptions {
        basic_auth: Some(("cri".into(), "s3cret".into())),
    });
    images::push_with(
        images::busybox(),
        auth_reg.http_addr(),
        "cri/private:1",
        Some("cri:s3cret"),
    );
    let private = format!("{}/cri/private:1", auth_reg.http_addr());
    accept_unsigned(&ctx, &[reg.http_addr(), auth_reg.http_addr()]);
    rt.block_on(async {
        let mut img = ImageServiceClient::new(channel(socket.clone()).await);
        let pull = |auth: Option<AuthConfig>| PullImageRequest {
            image: spec(&private),
            auth,
            ..Default::default()
        };
        img.pull_image(pull(None)).await.unwrap_err();
        let wrong = AuthConfig {
            username: "cri".into(),
            password: "wrong".into(),
            ..Default::default()
        };
        img.pull_image(pull(Some(wrong))).await.unwrap_err();
        let right = AuthConfig {
            username: "cri".into(),
            password: "s3cret".into(),
            ..Default::default()
        };
        let id = img
            .pull_image(pull(Some(right)))
            .await
            .unwrap()
            .into_inner()
            .image_ref;
        assert!(id.starts_with("sha256:"), "{id}");
    });

    // SIGTERM: a clean exit that removes the socket, although a client is still connected
    let ch = rt.block_on(channel(socket.clone()));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert!(child.wait().unwrap().success());
    assert!(!socket.exists());
    drop(ch);
}
