// AXI-Stream width converter between layers folded differently (e.g. PE 16 -> SIMD 32).
//
// Streams are element sequences with element 0 in the lowest bits, so up-sizing
// concatenates R input beats (the first one lowest) and down-sizing emits the
// input beat's slices from the lowest up. One width must divide the other; the
// stitcher chains two converters through the least common multiple otherwise.
module axis_dwc #(
    parameter int IN_W  = 8,
    parameter int OUT_W = 16
) (
    input  logic             clk,
    input  logic             rst_n,
    input  logic [IN_W-1:0]  in_tdata,
    input  logic             in_tvalid,
    output logic             in_tready,
    output logic [OUT_W-1:0] out_tdata,
    output logic             out_tvalid,
    input  logic             out_tready
);
    if (OUT_W == IN_W) begin : g_pass
        assign out_tdata = in_tdata;
        assign out_tvalid = in_tvalid;
        assign in_tready = out_tready;
    end else if (OUT_W > IN_W) begin : g_up
        localparam int R  = OUT_W / IN_W;
        localparam int CW = $clog2(R);
        logic [CW-1:0] cnt;
        logic          fire;
        assign in_tready = !out_tvalid || out_tready;
        assign fire = in_tvalid && in_tready;
        always_ff @(posedge clk) begin
            if (!rst_n) begin
                cnt <= '0;
                out_tvalid <= 1'b0;
            end else begin
                if (out_tready) out_tvalid <= 1'b0;
                if (fire) begin
                    cnt <= (cnt == CW'(R - 1)) ? '0 : cnt + 1'b1;
                    if (cnt == CW'(R - 1)) out_tvalid <= 1'b1;
                end
            end
            // Writing slice 0 of the next word while the finished one is taken is safe:
            // the consumer samples the old value at this edge.
            if (fire) out_tdata[cnt*IN_W +: IN_W] <= in_tdata;
        end
        initial if (OUT_W % IN_W != 0) $fatal(1, "axis_dwc: IN_W must divide OUT_W");
    end else begin : g_down
        localparam int R  = IN_W / OUT_W;
        localparam int CW = $clog2(R);
        logic [IN_W-1:0] data;
        logic [CW-1:0]   cnt;
        logic            full, last;
        assign last = cnt == CW'(R - 1);
        assign out_tvalid = full;
        assign out_tdata = data[cnt*OUT_W +: OUT_W];
        assign in_tready = !full || (out_tready && last);
        always_ff @(posedge clk) begin
            if (!rst_n) begin
                full <= 1'b0;
                cnt <= '0;
            end else begin
                if (full && out_tready) begin
                    cnt <= last ? '0 : cnt + 1'b1;
                    if (last) full <= 1'b0;
                end
                if (in_tvalid && in_tready) full <= 1'b1;
            end
            if (in_tvalid && in_tready) data <= in_tdata;
        end
        initial if (IN_W % OUT_W != 0) $fatal(1, "axis_dwc: OUT_W must divide IN_W");
    end
endmodule
