using HybridServing.ControlPlane.Resources;

namespace HybridServing.ControlPlane.Tests.Resources;

public sealed class LoraAdapterValidatorTests
{
    private const string Valid = """
        apiVersion: hybridserving.io/v1alpha1
        kind: LoraAdapter
        metadata:
          name: good
        spec:
          baseModel: test/tiny
          adapterSource:
            type: local
            repository: ./adapters
            pattern: "support-*"
          deploymentConfig:
            podSelector:
              matchLabels:
                pool: default
            replicas:
              min: 1
              max: 2
          schedulingConfig:
            priority: 10
            preemptionPolicy: LowerPriority
            resourceRequirements:
              memory: 64Mi
        """;

    private static string? Check(string yaml)
    {
        var doc = Assert.Single(ManifestReader.Read("x.yaml", yaml).Documents);
        Assert.Null(doc.Error);
        return LoraAdapterValidator.Validate(doc.Adapter!);
    }

    [Fact]
    public void Valid_spec_passes() => Assert.Null(Check(Valid));

    [Fact]
    public void An_empty_explicit_list_is_no_list_as_in_the_production_stack_proposal() =>
        Assert.Null(Check(Valid.Replace("    pattern: \"support-*\"", "    pattern: \"support-*\"\n    adapters: []", StringComparison.Ordinal)));

    [Theory]
    [InlineData("  baseModel: test/tiny", "  baseModel: ''", "spec.baseModel: Required value.")]
    [InlineData("    type: local", "    type: ftp", "spec.adapterSource.type: Unsupported value \"ftp\"")]
    [InlineData("    repository: ./adapters", "    repository: ''", "spec.adapterSource.repository: Required value.")]
    [InlineData("    pattern: \"support-*\"", "    pattern: \"support-[\"", "spec.adapterSource.pattern: Invalid value \"support-[\"")]
    [InlineData("    pattern: \"support-*\"", "    adapters: [\"../etc\"]", "spec.adapterSource.adapters[0]: Invalid value \"../etc\"")]
    [InlineData("    pattern: \"support-*\"", "    adapters: [a, a]", "spec.adapterSource.adapters[1]: Duplicate value \"a\".")]
    [InlineData("      min: 1", "      min: 3", "spec.deploymentConfig.replicas.min: Invalid value 3: must not exceed replicas.max (2).")]
    [InlineData("      min: 1", "      min: 0", "spec.deploymentConfig.replicas.min: Invalid value 0: must be between 1 and 1000.")]
    [InlineData("      min: 1", "      all: true", "spec.deploymentConfig.replicas.all: Invalid value true: cannot be combined with min or max.")]
    [InlineData("    priority: 10", "    priority: -1", "spec.schedulingConfig.priority: Invalid value -1: must be between 0 and 1000000.")]
    [InlineData("    preemptionPolicy: LowerPriority", "    preemptionPolicy: Always", "spec.schedulingConfig.preemptionPolicy: Unsupported value \"Always\"")]
    [InlineData("      memory: 64Mi", "      memory: lots", "spec.schedulingConfig.resourceRequirements.memory: Invalid value \"lots\"")]
    [InlineData("        pool: default", "        pool: \"not valid!\"", "spec.deploymentConfig.podSelector.matchLabels.pool: Invalid value \"not valid!\"")]
    [InlineData("      matchLabels:\n        pool: default", "      matchExpressions:\n      - {key: gpu, operator: Has}", "spec.deploymentConfig.podSelector.matchExpressions[0].operator: Unsupported value \"Has\"")]
    [InlineData("      matchLabels:\n        pool: default", "      matchExpressions:\n      - {key: gpu, operator: In}", "spec.deploymentConfig.podSelector.matchExpressions[0].values: Required value")]
    [InlineData("  name: good", "  name: Not_Good", "metadata.name: Invalid value \"Not_Good\"")]
    [InlineData("  name: good", "  name: good\n  namespace: Bad_Ns", "metadata.namespace: Invalid value \"Bad_Ns\"")]
    [InlineData("  schedulingConfig:", "  credentialsSecretRef: {}\n  schedulingConfig:", "spec.credentialsSecretRef.name: Required value.")]
    public void Invalid_spec_names_the_field(string original, string replacement, string expected)
    {
        Assert.Contains(original, Valid);
        var error = Check(Valid.Replace(original, replacement));
        Assert.NotNull(error);
        Assert.StartsWith(expected, error);
    }

    [Theory]
    [InlineData("512Mi", 512L << 20)]
    [InlineData("2Gi", 2L << 30)]
    [InlineData("1.5G", 1_500_000_000L)]
    [InlineData("100", 100L)]
    public void Quantities_parse(string text, long bytes)
    {
        Assert.True(Quantity.TryParseBytes(text, out var parsed));
        Assert.Equal(bytes, parsed);
    }
}
