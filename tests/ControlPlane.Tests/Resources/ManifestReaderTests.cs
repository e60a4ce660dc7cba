using HybridServing.ControlPlane.Resources;

namespace HybridServing.ControlPlane.Tests.Resources;

public sealed class ManifestReaderTests
{
    private const string Valid = """
        apiVersion: hybridserving.io/v1alpha1
        kind: LoraAdapter
        metadata:
          name: one
        spec:
          baseModel: test/tiny
          adapterSource:
            type: local
            repository: ./adapters
          schedulingConfig:
            priority: 10
        """;

    [Fact]
    public void Reads_several_documents_from_one_file()
    {
        var file = ManifestReader.Read("x.yaml", Valid + "\n---\n" + Valid.Replace("name: one", "name: two") + "\n---\n");
        Assert.Null(file.Error);
        Assert.Equal(["one", "two"], file.Documents.Select(d => d.Adapter!.Metadata.Name));
        Assert.All(file.Documents, d => Assert.Null(d.Error));
        Assert.Equal(10, file.Documents[0].Adapter!.Spec.SchedulingConfig!.Priority);
    }

    [Fact]
    public void Production_stack_proposal_example_reads_with_only_apiVersion_changed()
    {
        var seed = Sources.RemoteSourceEndToEndTests.ProductionStackExample.Replace("production-stack.vllm-project/v1alpha1", "hybridserving.io/v1alpha1", StringComparison.Ordinal);
        var doc = Assert.Single(ManifestReader.Read("seed.yaml", seed).Documents);
        Assert.Null(doc.Error);
        Assert.Equal("true", doc.Adapter!.Spec.DeploymentConfig!.PodSelector!.MatchLabels["lora-enabled"]);
        Assert.Equal("2Gi", doc.Adapter.Spec.SchedulingConfig!.ResourceRequirements!.Memory);
    }

    [Fact]
    public void YAML_syntax_error_names_file_and_line()
    {
        var file = ManifestReader.Read("/m/broken.yaml", "apiVersion: x\nkind: [unclosed\n");
        Assert.NotNull(file.Error);
        Assert.Contains("broken.yaml", file.Error);
        Assert.Contains("line", file.Error);
    }

    [Theory]
    [InlineData("kind: Deployment", "kind: LoraAdapter", "kind 'Deployment' is not supported")]
    [InlineData("apiVersion: production-stack.vllm-project/v1alpha1", "apiVersion: hybridserving.io/v1alpha1", "use apiVersion: hybridserving.io/v1alpha1")]
    [InlineData("name: ''", "name: one", "metadata.name is required")]
    public void Documents_that_cannot_be_objects_are_errors(string replacement, string original, string expected)
    {
        var doc = Assert.Single(ManifestReader.Read("x.yaml", Valid.Replace(original, replacement)).Documents);
        Assert.Null(doc.Adapter);
        Assert.Contains(expected, doc.Error);
    }

    [Fact]
    public void Wrong_type_names_the_field_and_keeps_the_object()
    {
        var doc = Assert.Single(ManifestReader.Read("x.yaml", Valid.Replace("priority: 10", "priority: high")).Documents);
        Assert.Equal("one", doc.Adapter!.Metadata.Name);
        Assert.StartsWith("spec.schedulingConfig.priority:", doc.Error);
    }

    [Fact]
    public void Unknown_field_is_refused_with_its_path()
    {
        var doc = Assert.Single(ManifestReader.Read("x.yaml", Valid.Replace("    priority: 10", "    priority: 10\n    prioritty: 3")).Documents);
        Assert.Equal("spec.schedulingConfig.prioritty: unknown field.", doc.Error);
    }

    [Fact]
    public void Quoted_numbers_stay_strings_and_plain_ones_are_numbers()
    {
        var doc = Assert.Single(ManifestReader.Read("x.yaml", Valid.Replace("priority: 10", "priority: \"10\"")).Documents);
        Assert.StartsWith("spec.schedulingConfig.priority:", doc.Error);
    }

    [Fact]
    public void Duplicate_keys_are_errors()
    {
        // The YAML parser itself refuses duplicate keys: the whole file is reported, with the line.
        var file = ManifestReader.Read("x.yaml", Valid.Replace("  baseModel: test/tiny", "  baseModel: test/tiny\n  baseModel: other"));
        Assert.Empty(file.Documents);
        Assert.Contains("line 7", file.Error);
        Assert.Contains("uplicate", file.Error);
    }
}
