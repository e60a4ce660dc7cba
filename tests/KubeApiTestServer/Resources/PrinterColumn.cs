namespace HybridServing.KubeApiTestServer.Resources;

/// <summary>
/// A column of the Table a server returns to <c>kubectl get</c>, as a CRD's
/// <c>additionalPrinterColumns</c> entry declares it.
/// </summary>
/// <param name="Name">Header, e.g. <c>Base Model</c>.</param>
/// <param name="Type">OpenAPI type: <c>string</c>, <c>integer</c>, <c>number</c>, <c>boolean</c> or <c>date</c> (shown as an age, e.g. <c>5m</c>).</param>
/// <param name="JsonPath">A simple JSONPath into the object: <c>.spec.baseModel</c>, <c>.status.conditions[?(@.type=="Ready")].status</c>, <c>.items[0]</c>.</param>
/// <param name="Priority">0 is always shown; above 0 only with <c>-o wide</c>.</param>
public sealed record PrinterColumn(string Name, string Type, string JsonPath, int Priority = 0)
{
    public string Description { get; init; } = "";
    public string Format { get; init; } = "";
}
