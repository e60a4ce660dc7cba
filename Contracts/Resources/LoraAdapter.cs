using System.Text.Json.Serialization;
using k8s;
using k8s.Models;

namespace HybridServing.Contracts.Resources;

/// <summary>
/// A set of LoRA adapters for one base model, from one source, with placement wishes.
/// The spec is a superset of the vLLM production-stack proposal's <c>LoraAdapter</c>: that example works with only
/// <c>apiVersion</c> changed. This C# type is the source of truth for the CRD in <c>k8s/crds/</c>.
/// </summary>
public sealed class LoraAdapter : IKubernetesObject<V1ObjectMeta>, ISpec<LoraAdapterSpec>, IStatus<LoraAdapterStatus?>
{
    public const string Group = "hybridserving.io";
    public const string Version = "v1alpha1";
    public const string KindName = "LoraAdapter";
    public const string Plural = "loraadapters";
    public const string ShortName = "lora";
    public const string ApiVersionValue = Group + "/" + Version;

    [JsonPropertyName("apiVersion")]
    public string ApiVersion { get; set; } = ApiVersionValue;

    [JsonPropertyName("kind")]
    public string Kind { get; set; } = KindName;

    [JsonPropertyName("metadata")]
    public V1ObjectMeta Metadata { get; set; } = new();

    [JsonPropertyName("spec")]
    public LoraAdapterSpec Spec { get; set; } = new();

    [JsonPropertyName("status")]
    public LoraAdapterStatus? Status { get; set; }
}

public sealed class LoraAdapterList : IKubernetesObject<V1ListMeta>, IItems<LoraAdapter>
{
    [JsonPropertyName("apiVersion")]
    public string ApiVersion { get; set; } = LoraAdapter.ApiVersionValue;

    [JsonPropertyName("kind")]
    public string Kind { get; set; } = LoraAdapter.KindName + "List";

    [JsonPropertyName("metadata")]
    public V1ListMeta Metadata { get; set; } = new();

    [JsonPropertyName("items")]
    public IList<LoraAdapter> Items { get; set; } = [];
}

public sealed class LoraAdapterSpec
{
    /// <summary>Base model the adapters were trained on; must match an engine's served model name.</summary>
    [SchemaRequired, SchemaLength(1, 256)]
    [JsonPropertyName("baseModel")]
    public string BaseModel { get; set; } = "";

    [SchemaRequired]
    [JsonPropertyName("adapterSource")]
    public AdapterSource AdapterSource { get; set; } = new();

    [JsonPropertyName("credentialsSecretRef")]
    public SecretReference? CredentialsSecretRef { get; set; }

    [JsonPropertyName("deploymentConfig")]
    public DeploymentConfig? DeploymentConfig { get; set; }

    [JsonPropertyName("schedulingConfig")]
    public SchedulingConfig? SchedulingConfig { get; set; }
}

public static class AdapterSourceTypes
{
    public const string HuggingFace = "huggingface";
    public const string S3 = "s3";
    public const string Local = "local";
    public const string Http = "http";
    public static readonly IReadOnlyList<string> All = [HuggingFace, S3, Local, Http];
}

public sealed class AdapterSource
{
    /// <summary>huggingface | s3 | local | http.</summary>
    [SchemaRequired, SchemaEnum(AdapterSourceTypes.HuggingFace, AdapterSourceTypes.S3, AdapterSourceTypes.Local, AdapterSourceTypes.Http)]
    [JsonPropertyName("type")]
    public string Type { get; set; } = "";

    /// <summary>Hub repo id, <c>bucket/prefix</c>, local directory or URL, by <see cref="Type"/>.</summary>
    [SchemaRequired, SchemaLength(1, 1024)]
    [JsonPropertyName("repository")]
    public string Repository { get; set; } = "";

    [SchemaLength(1, 256)]
    [JsonPropertyName("revision")]
    public string? Revision { get; set; }

    /// <summary>Glob over adapter names (<c>*</c>, <c>?</c>, <c>[abc]</c>).</summary>
    [SchemaLength(1, 256)]
    [JsonPropertyName("pattern")]
    public string? Pattern { get; set; }

    /// <summary>Only adapters whose name starts with this prefix.</summary>
    [SchemaLength(1, 128)]
    [JsonPropertyName("prefix")]
    public string? Prefix { get; set; }

    /// <summary>Explicit adapter names inside the repository.</summary>
    [SchemaPattern(AdapterNames.Pattern), SchemaItems(0, 10000)]
    [JsonPropertyName("adapters")]
    public IList<string>? Adapters { get; set; }
}

public sealed class SecretReference
{
    [SchemaRequired, SchemaPattern(AdapterNames.DnsSubdomainPattern), SchemaLength(1, 253)]
    [JsonPropertyName("name")]
    public string Name { get; set; } = "";
}

public sealed class DeploymentConfig
{
    [JsonPropertyName("loadOnStartup")]
    public bool LoadOnStartup { get; set; } = true;

    [JsonPropertyName("podSelector")]
    public V1LabelSelector? PodSelector { get; set; }

    [JsonPropertyName("replicas")]
    public ReplicaConfig? Replicas { get; set; }
}

/// <summary>How many engines hold each adapter: <c>min</c>..<c>max</c>, or <c>all</c> matching engines.</summary>
[SchemaRule("!has(self.min) || !has(self.max) || self.min <= self.max", "replicas.min must not exceed replicas.max")]
[SchemaRule("!has(self.all) || !self.all || (!has(self.min) && !has(self.max))", "replicas.all cannot be combined with min or max")]
public sealed class ReplicaConfig
{
    [SchemaRange(1, 1000)]
    [JsonPropertyName("min")]
    public int? Min { get; set; }

    [SchemaRange(1, 1000)]
    [JsonPropertyName("max")]
    public int? Max { get; set; }

    [JsonPropertyName("all")]
    public bool? All { get; set; }
}

public static class PreemptionPolicies
{
    public const string LowerPriority = "LowerPriority";
    public const string None = "None";
}

public sealed class SchedulingConfig
{
    [SchemaRange(0, 1000000)]
    [JsonPropertyName("priority")]
    public int? Priority { get; set; }

    [SchemaEnum(PreemptionPolicies.LowerPriority, PreemptionPolicies.None)]
    [JsonPropertyName("preemptionPolicy")]
    public string? PreemptionPolicy { get; set; }

    [JsonPropertyName("resourceRequirements")]
    public AdapterResourceRequirements? ResourceRequirements { get; set; }
}

public sealed class AdapterResourceRequirements
{
    /// <summary>Kubernetes quantity, e.g. <c>2Gi</c>.</summary>
    [SchemaPattern(AdapterNames.QuantityPattern)]
    [JsonPropertyName("memory")]
    public string? Memory { get; set; }
}

public static class LoraAdapterPhases
{
    public const string Pending = "Pending";
    public const string Loading = "Loading";
    public const string Ready = "Ready";
    public const string Partial = "Partial";
    public const string Failed = "Failed";
    public const string Deleting = "Deleting";
}

public sealed class LoraAdapterStatus
{
    [SchemaEnum(LoraAdapterPhases.Pending, LoraAdapterPhases.Loading, LoraAdapterPhases.Ready, LoraAdapterPhases.Partial, LoraAdapterPhases.Failed, LoraAdapterPhases.Deleting)]
    [JsonPropertyName("phase")]
    public string? Phase { get; set; }

    [JsonPropertyName("conditions")]
    public IList<V1Condition>? Conditions { get; set; }

    [JsonPropertyName("observedGeneration")]
    public long? ObservedGeneration { get; set; }

    [JsonPropertyName("loadedAdapters")]
    public IList<string>? LoadedAdapters { get; set; }

    [JsonPropertyName("failedAdapters")]
    public IList<FailedAdapter>? FailedAdapters { get; set; }

    [JsonPropertyName("podAssignments")]
    public IList<PodAssignment>? PodAssignments { get; set; }

    /// <summary>Facts read from each discovered adapter's files.</summary>
    [JsonPropertyName("adapters")]
    public IList<DiscoveredAdapterStatus>? Adapters { get; set; }
}

public sealed class FailedAdapter
{
    [JsonPropertyName("name")]
    public string Name { get; set; } = "";

    [JsonPropertyName("reason")]
    public string Reason { get; set; } = "";

    [JsonPropertyName("message")]
    public string? Message { get; set; }

    /// <summary>The engine (pod) the failure happened on, when it is engine-specific.</summary>
    [JsonPropertyName("pod")]
    public string? Pod { get; set; }

    /// <summary>Consecutive failed attempts (bounded exponential backoff).</summary>
    [JsonPropertyName("attempts")]
    public int? Attempts { get; set; }

    /// <summary>When the next attempt is due (RFC 3339), while backing off.</summary>
    [JsonPropertyName("nextRetryTime")]
    public DateTime? NextRetryTime { get; set; }
}

public sealed class PodAssignment
{
    [JsonPropertyName("pod")]
    public string Pod { get; set; } = "";

    [JsonPropertyName("node")]
    public string? Node { get; set; }

    /// <summary>Names of the adapters placed on this pod, as the production-stack proposal's status shows them (whatever their state).</summary>
    [JsonPropertyName("adapters")]
    public IList<string> Adapters { get; set; } = [];

    /// <summary>Each placed adapter's state on this pod (our addition: the production-stack proposal has only the names).</summary>
    [JsonPropertyName("adapterStates")]
    public IList<PodAdapterState> AdapterStates { get; set; } = [];
}

public sealed class PodAdapterState
{
    [JsonPropertyName("name")]
    public string Name { get; set; } = "";

    /// <summary>Pending | Downloading | Loading | Loaded | Failed | Unloading.</summary>
    [JsonPropertyName("state")]
    public string State { get; set; } = "";

    [JsonPropertyName("message")]
    public string? Message { get; set; }

    /// <summary>Machine-readable reason when the state is Failed (e.g. EngineRejected).</summary>
    [JsonPropertyName("reason")]
    public string? Reason { get; set; }

    /// <summary>Consecutive failed attempts on this pod.</summary>
    [JsonPropertyName("attempts")]
    public int? Attempts { get; set; }

    /// <summary>When the next attempt on this pod is due, while backing off.</summary>
    [JsonPropertyName("nextRetryTime")]
    public DateTime? NextRetryTime { get; set; }
}

public sealed class DiscoveredAdapterStatus
{
    [JsonPropertyName("name")]
    public string Name { get; set; } = "";

    [JsonPropertyName("uri")]
    public string Uri { get; set; } = "";

    [JsonPropertyName("rank")]
    public int Rank { get; set; }

    [JsonPropertyName("sizeBytes")]
    public long SizeBytes { get; set; }

    [JsonPropertyName("digest")]
    public string? Digest { get; set; }

    [JsonPropertyName("targetModules")]
    public IList<string>? TargetModules { get; set; }
}

/// <summary>Syntax of the names and quantities a LoraAdapter carries.</summary>
public static class AdapterNames
{
    /// <summary>An adapter name: also its <c>lora_name</c> on engines and a directory name in a repository, so no path separators.</summary>
    public const string Pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$";

    /// <summary>Kubernetes object names (RFC 1123 subdomain).</summary>
    public const string DnsSubdomainPattern = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";

    /// <summary>A Kubernetes memory quantity such as <c>512Mi</c> or <c>2G</c>.</summary>
    public const string QuantityPattern = "^[0-9]+(\\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$";
}
