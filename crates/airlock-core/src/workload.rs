//! Which container images a Kubernetes object would run, read from its pod spec.
//!
//! An admission check receives an object and its kind (the AdmissionReview's `kind.kind`);
//! [`images_of`] finds the pod spec where that kind keeps it and lists every image of its
//! `containers`, `initContainers` and `ephemeralContainers`, in that order, each with the field
//! path kubectl prints, so a refusal can point at the exact field. It neither parses the images
//! (see [`crate::image_ref::ImageRef`]) nor decides what a workload without containers means.
//!
//! Guarantees: at most [`MAX_CONTAINERS`] containers are read from one object, and an unsupported
//! kind or a malformed pod spec is an error, never an empty list, so nothing passes unread.

use serde_json::Value;

use crate::error::truncated;

/// Most containers read from one object; an object with more is refused before any is read.
pub const MAX_CONTAINERS: usize = 1000;

/// Where each supported kind keeps its pod spec, as a dotted field path. The one list of
/// supported kinds.
const POD_SPEC_FIELDS: [(&str, &str); 8] = [
    ("Pod", "spec"),
    ("Deployment", "spec.template.spec"),
    ("StatefulSet", "spec.template.spec"),
    ("DaemonSet", "spec.template.spec"),
    ("ReplicaSet", "spec.template.spec"),
    ("ReplicationController", "spec.template.spec"),
    ("Job", "spec.template.spec"),
    ("CronJob", "spec.jobTemplate.spec.template.spec"),
];

/// The pod spec's container lists, in the order their images are reported.
const CONTAINER_LISTS: [&str; 3] = ["containers", "initContainers", "ephemeralContainers"];

/// One container's image as the object writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerImage {
    /// The image's field path, e.g. `spec.template.spec.initContainers[0].image`.
    pub field: String,
    /// The container's `name`; empty if the object gives none (the API server requires one).
    pub container: String,
    /// The image reference, unparsed.
    pub image: String,
}

/// Why the images of an object cannot be read. Each message says what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorkloadError {
    /// The kind is not one whose pod spec location is known.
    #[error(
        "unsupported kind {kind:?}: images are read from {}; send only these kinds to this check",
        supported_kinds()
    )]
    UnsupportedKind {
        /// The kind given (truncated).
        kind: String,
    },
    /// The object has no JSON object where its kind keeps the pod spec.
    #[error(
        "{kind} has no pod spec at {field}: send the object being created or updated, with its pod spec at {field}"
    )]
    MissingPodSpec {
        /// The object's kind.
        kind: &'static str,
        /// Where the pod spec should be.
        field: &'static str,
    },
    /// A container list is present but not an array.
    #[error(
        "{field} must be an array of containers, e.g. [{{\"name\": \"app\", \"image\": \"registry.example.com/team/app:1.0\"}}]"
    )]
    NotAnArray {
        /// The list's field path.
        field: String,
    },
    /// A container has no `image` string.
    #[error(
        "{field} is missing or not a string: every container must name its image, e.g. registry.example.com/team/app:1.0"
    )]
    MissingImage {
        /// The image's field path.
        field: String,
    },
    /// The object lists more than [`MAX_CONTAINERS`] containers.
    #[error(
        "the object lists {count} containers; at most {MAX_CONTAINERS} are read from one object, split the workload"
    )]
    TooManyContainers {
        /// How many the object lists.
        count: usize,
    },
}

/// The supported kinds as a list for messages.
fn supported_kinds() -> String {
    POD_SPEC_FIELDS.map(|(kind, _)| kind).join(", ")
}

/// The images of every container in `object`, a Kubernetes object of kind `kind`, in the order
/// `containers`, `initContainers`, `ephemeralContainers`. A pod spec without containers gives an
/// empty list; an absent or `null` list counts as empty.
pub fn images_of(kind: &str, object: &Value) -> Result<Vec<ContainerImage>, WorkloadError> {
    let (kind, spec_field) = POD_SPEC_FIELDS
        .into_iter()
        .find(|(supported, _)| *supported == kind)
        .ok_or_else(|| WorkloadError::UnsupportedKind {
            kind: truncated(kind),
        })?;
    let spec = spec_field
        .split('.')
        .try_fold(object, |value, key| value.get(key))
        .filter(|spec| spec.is_object())
        .ok_or(WorkloadError::MissingPodSpec {
            kind,
            field: spec_field,
        })?;

    let mut lists = Vec::with_capacity(CONTAINER_LISTS.len());
    for list in CONTAINER_LISTS {
        match spec.get(list) {
            None | Some(Value::Null) => {}
            Some(Value::Array(containers)) => lists.push((list, containers)),
            Some(_) => {
                return Err(WorkloadError::NotAnArray {
                    field: format!("{spec_field}.{list}"),
                });
            }
        }
    }
    let count = lists.iter().map(|(_, containers)| containers.len()).sum();
    if count > MAX_CONTAINERS {
        return Err(WorkloadError::TooManyContainers { count });
    }

    let mut images = Vec::with_capacity(count);
    for (list, containers) in lists {
        for (index, container) in containers.iter().enumerate() {
            let field = format!("{spec_field}.{list}[{index}].image");
            let Some(image) = container.get("image").and_then(Value::as_str) else {
                return Err(WorkloadError::MissingImage { field });
            };
            let name = container.get("name").and_then(Value::as_str);
            images.push(ContainerImage {
                field,
                container: name.unwrap_or_default().to_string(),
                image: image.to_string(),
            });
        }
    }
    Ok(images)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// `(field, container, image)` of each image, for compact assertions.
    fn listed(kind: &str, object: &Value) -> Vec<(String, String, String)> {
        images_of(kind, object)
            .unwrap_or_else(|e| panic!("{kind}: {e}"))
            .into_iter()
            .map(|c| (c.field, c.container, c.image))
            .collect()
    }

    fn row(field: &str, container: &str, image: &str) -> (String, String, String) {
        (field.to_string(), container.to_string(), image.to_string())
    }

    #[test]
    fn pod_lists_containers_then_init_then_ephemeral() {
        let pod = json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "web-7f9c", "namespace": "shop", "labels": {"app": "web"}},
            "spec": {
                "initContainers": [
                    {"name": "migrate", "image": "registry.example.com/prod/shop/migrate:1.4.0",
                     "command": ["/migrate", "up"]}
                ],
                "containers": [
                    {"name": "web", "image": "registry.example.com/prod/shop/web:1.4.0",
                     "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                     "resources": {"limits": {"memory": "256Mi"}}},
                    {"name": "proxy", "image": "registry.example.com/prod/shop/proxy@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}
                ],
                "ephemeralContainers": [
                    {"name": "debugger-x2k", "image": "busybox:1.36", "targetContainerName": "web",
                     "stdin": true, "tty": true}
                ],
                "restartPolicy": "Always",
                "serviceAccountName": "web"
            },
            "status": {"phase": "Running"}
        });
        assert_eq!(
            listed("Pod", &pod),
            [
                row(
                    "spec.containers[0].image",
                    "web",
                    "registry.example.com/prod/shop/web:1.4.0"
                ),
                row(
                    "spec.containers[1].image",
                    "proxy",
                    "registry.example.com/prod/shop/proxy@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
                ),
                row(
                    "spec.initContainers[0].image",
                    "migrate",
                    "registry.example.com/prod/shop/migrate:1.4.0"
                ),
                row(
                    "spec.ephemeralContainers[0].image",
                    "debugger-x2k",
                    "busybox:1.36"
                ),
            ]
        );
    }

    #[test]
    fn deployment_reads_the_template() {
        let deployment = json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": {"app": "web"}},
                "strategy": {"type": "RollingUpdate"},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {
                        "initContainers": [{"name": "config", "image": "localhost:5000/prod/shop/config:2"}],
                        "containers": [{"name": "web", "image": "localhost:5000/prod/shop/web:1.4.0",
                                        "ports": [{"containerPort": 8080}]}]
                    }
                }
            }
        });
        assert_eq!(
            listed("Deployment", &deployment),
            [
                row(
                    "spec.template.spec.containers[0].image",
                    "web",
                    "localhost:5000/prod/shop/web:1.4.0"
                ),
                row(
                    "spec.template.spec.initContainers[0].image",
                    "config",
                    "localhost:5000/prod/shop/config:2"
                ),
            ]
        );
    }

    #[test]
    fn statefulset_daemonset_replicaset_and_replicationcontroller_read_the_template() {
        let statefulset = json!({
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": "db", "namespace": "shop"},
            "spec": {
                "serviceName": "db",
                "replicas": 3,
                "selector": {"matchLabels": {"app": "db"}},
                "template": {
                    "metadata": {"labels": {"app": "db"}},
                    "spec": {"containers": [{"name": "postgres", "image": "registry.example.com/prod/db/postgres:16.2",
                                              "volumeMounts": [{"name": "data", "mountPath": "/var/lib/postgresql/data"}]}]}
                },
                "volumeClaimTemplates": [{"metadata": {"name": "data"},
                                          "spec": {"accessModes": ["ReadWriteOnce"],
                                                   "resources": {"requests": {"storage": "10Gi"}}}}]
            }
        });
        let daemonset = json!({
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": {"name": "node-exporter", "namespace": "monitoring"},
            "spec": {
                "selector": {"matchLabels": {"app": "node-exporter"}},
                "template": {
                    "metadata": {"labels": {"app": "node-exporter"}},
                    "spec": {"hostNetwork": true,
                             "containers": [{"name": "exporter", "image": "10.0.0.5:5000/prod/mon/node-exporter:1.8.0"}]}
                }
            }
        });
        let replicaset = json!({
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {"name": "web-5d8f", "namespace": "shop",
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "1"}]},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web", "pod-template-hash": "5d8f"}},
                "template": {
                    "metadata": {"labels": {"app": "web", "pod-template-hash": "5d8f"}},
                    "spec": {"containers": [{"name": "web", "image": "registry.example.com/prod/shop/web:1.4.0"}]}
                }
            }
        });
        let replicationcontroller = json!({
            "apiVersion": "v1",
            "kind": "ReplicationController",
            "metadata": {"name": "legacy", "namespace": "shop"},
            "spec": {
                "replicas": 1,
                "selector": {"app": "legacy"},
                "template": {
                    "metadata": {"labels": {"app": "legacy"}},
                    "spec": {"containers": [{"name": "legacy", "image": "nginx"}]}
                }
            }
        });
        for (kind, object, name, image) in [
            (
                "StatefulSet",
                &statefulset,
                "postgres",
                "registry.example.com/prod/db/postgres:16.2",
            ),
            (
                "DaemonSet",
                &daemonset,
                "exporter",
                "10.0.0.5:5000/prod/mon/node-exporter:1.8.0",
            ),
            (
                "ReplicaSet",
                &replicaset,
                "web",
                "registry.example.com/prod/shop/web:1.4.0",
            ),
            (
                "ReplicationController",
                &replicationcontroller,
                "legacy",
                "nginx",
            ),
        ] {
            assert_eq!(
                listed(kind, object),
                [row("spec.template.spec.containers[0].image", name, image)],
                "{kind}"
            );
        }
    }

    #[test]
    fn job_and_cronjob_read_their_templates() {
        let job = json!({
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "reindex", "namespace": "shop"},
            "spec": {
                "backoffLimit": 4,
                "template": {
                    "spec": {
                        "restartPolicy": "Never",
                        "initContainers": [{"name": "wait", "image": "busybox:1.36"}],
                        "containers": [{"name": "reindex", "image": "registry.example.com/prod/shop/reindex:3"}]
                    }
                }
            }
        });
        assert_eq!(
            listed("Job", &job),
            [
                row(
                    "spec.template.spec.containers[0].image",
                    "reindex",
                    "registry.example.com/prod/shop/reindex:3"
                ),
                row(
                    "spec.template.spec.initContainers[0].image",
                    "wait",
                    "busybox:1.36"
                ),
            ]
        );

        let cronjob = json!({
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "metadata": {"name": "nightly-report", "namespace": "shop"},
            "spec": {
                "schedule": "0 2 * * *",
                "concurrencyPolicy": "Forbid",
                "jobTemplate": {
                    "spec": {
                        "template": {
                            "spec": {
                                "restartPolicy": "OnFailure",
                                "containers": [{"name": "report", "image": "registry.example.com/prod/shop/report:1.0"}]
                            }
                        }
                    }
                }
            }
        });
        assert_eq!(
            listed("CronJob", &cronjob),
            [row(
                "spec.jobTemplate.spec.template.spec.containers[0].image",
                "report",
                "registry.example.com/prod/shop/report:1.0"
            )]
        );
    }

    #[test]
    fn no_containers_is_an_empty_list() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "empty"},
                         "spec": {"containers": [], "initContainers": null}});
        assert_eq!(images_of("Pod", &pod), Ok(vec![]));
        let pod =
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bare"}, "spec": {}});
        assert_eq!(images_of("Pod", &pod), Ok(vec![]));
    }

    #[test]
    fn unsupported_kind_lists_the_supported_ones() {
        let service = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
                             "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}});
        for kind in ["Service", "deployment", ""] {
            let err = images_of(kind, &service).unwrap_err();
            assert_eq!(
                err,
                WorkloadError::UnsupportedKind {
                    kind: kind.to_string()
                }
            );
            let message = err.to_string();
            assert!(
                message.contains("Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, ReplicationController, Job, CronJob"),
                "{message}"
            );
        }
    }

    #[test]
    fn missing_or_non_object_pod_spec_is_an_error() {
        let without_template = json!({"apiVersion": "apps/v1", "kind": "Deployment",
                                      "metadata": {"name": "web"},
                                      "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}}}});
        assert_eq!(
            images_of("Deployment", &without_template),
            Err(WorkloadError::MissingPodSpec {
                kind: "Deployment",
                field: "spec.template.spec"
            })
        );
        let string_spec =
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": "web"});
        assert_eq!(
            images_of("Pod", &string_spec),
            Err(WorkloadError::MissingPodSpec {
                kind: "Pod",
                field: "spec"
            })
        );
        // An AdmissionReview for a DELETE carries `object: null`.
        let err = images_of("CronJob", &Value::Null).unwrap_err();
        assert!(
            err.to_string()
                .contains("spec.jobTemplate.spec.template.spec")
        );
    }

    #[test]
    fn container_without_a_string_image_names_the_field() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                         "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}],
                                  "initContainers": [{"name": "setup"}]}});
        let err = images_of("Pod", &pod).unwrap_err();
        assert_eq!(
            err,
            WorkloadError::MissingImage {
                field: "spec.initContainers[0].image".to_string()
            }
        );
        assert!(err.to_string().starts_with("spec.initContainers[0].image"));

        let job = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},
                         "spec": {"template": {"spec": {"containers": [{"name": "j", "image": 7}]}}}});
        assert_eq!(
            images_of("Job", &job),
            Err(WorkloadError::MissingImage {
                field: "spec.template.spec.containers[0].image".to_string()
            })
        );
    }

    #[test]
    fn non_array_container_list_is_an_error() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                         "spec": {"containers": [{"name": "web", "image": "nginx"}],
                                  "ephemeralContainers": {"name": "debug", "image": "busybox"}}});
        assert_eq!(
            images_of("Pod", &pod),
            Err(WorkloadError::NotAnArray {
                field: "spec.ephemeralContainers".to_string()
            })
        );
    }

    #[test]
    fn more_than_the_bound_is_refused() {
        let containers = |n: usize| -> Vec<Value> {
            (0..n)
                .map(|i| json!({"name": format!("c{i}"), "image": "nginx"}))
                .collect()
        };
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                         "spec": {"containers": containers(600), "initContainers": containers(401)}});
        assert_eq!(
            images_of("Pod", &pod),
            Err(WorkloadError::TooManyContainers { count: 1001 })
        );
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                         "spec": {"containers": containers(600), "initContainers": containers(400)}});
        assert_eq!(images_of("Pod", &pod).map(|i| i.len()), Ok(1000));
    }
}
