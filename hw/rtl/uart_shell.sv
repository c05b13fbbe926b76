// The accelerator behind a serial line: the board-level top of the open ECP5 flow.
//
//   uart_rx -> byte FIFO -> axis_dwc (8 -> IN_W) -> bnn_top -> axis_dwc (OUT_W -> 8) -> uart_tx
//
// Protocol (host side: README "Open-source bitstream (ECP5)"): a frame in is the
// accelerator's input beats in FINN's packed order, each beat IN_W / 8 bytes, least
// significant byte first (element 0 in the lowest bits: the bytes the PYNQ driver's
// DMA buffer holds); a frame out is the output beats the same way, OUT_W / 8 bytes
// each. No header: the byte counts per frame are fixed by the build (io_spec.json).
// Frames may follow each other back to back. A break (the line held low for 20 bit
// times, e.g. pyserial's send_break) resets everything, so a host that lost count
// starts again from a clean state.
//
// bnn_top is the stitched dataflow graph (hw/rtlgen/stitch.py) with padded stream
// widths IN_W and OUT_W; it runs on the same clock as the UART (one clock domain: the
// board's oscillator, or a PLL's output when the design needs another frequency).
module uart_shell #(
    parameter int CLK_HZ     = 25_000_000,
    parameter int BAUD       = 3_000_000,
    parameter int IN_W       = 8,           // bnn_top's in0_V_TDATA width (a multiple of 8)
    parameter int OUT_W      = 8,           // bnn_top's out0_V_TDATA width (a multiple of 8)
    parameter int FIFO_DEPTH = 512          // input bytes buffered while the accelerator is busy
) (
    input  logic clk,
    input  logic clk_ok,                    // the clock is stable (a PLL's lock; 1 without a PLL)
    input  logic uart_rx,
    output logic uart_tx,
    output logic led0,                      // toggles with every byte received
    output logic led1                       // sticky: input overflow or framing error since reset
);
    // Power-on reset: ECP5 flip-flops start at their init value, so a counter works; it
    // restarts while a PLL is not locked.
    logic [3:0] por = 4'd0;
    always_ff @(posedge clk)
        if (!clk_ok) por <= 4'd0;
        else if (por != 4'hf) por <= por + 1'b1;

    // Break detector (reset only at power-on, as it resets the rest).
    localparam int BREAK_CLKS = 20 * (CLK_HZ / BAUD + 1);
    localparam int BW = $clog2(BREAK_CLKS + 1) + 1;
    logic [1:0]    rx_sync = 2'b11;
    logic [BW-1:0] low_clks = '0;
    logic          brk = 1'b0;
    always_ff @(posedge clk) begin
        rx_sync <= {rx_sync[0], uart_rx};
        if (rx_sync[1]) low_clks <= '0;
        else if (low_clks != BW'(BREAK_CLKS)) low_clks <= low_clks + 1'b1;
        brk <= low_clks == BW'(BREAK_CLKS);
    end
    logic rst_n = 1'b0;
    always_ff @(posedge clk) rst_n <= por == 4'hf && !brk;

    // Serial in -> bytes.
    logic [7:0] rx_data;
    logic       rx_valid, rx_err;
    uart_rx #(.CLK_HZ(CLK_HZ), .BAUD(BAUD)) u_rx (
        .clk, .rst_n, .rx(uart_rx), .data(rx_data), .valid(rx_valid), .frame_err(rx_err));

    // Bytes -> FIFO (a UART cannot be stalled: a full FIFO drops the byte and says so).
    logic [7:0] fb_tdata;
    logic       fb_tvalid, fb_tready, fifo_in_ready;
    axis_fifo #(.WIDTH(8), .DEPTH(FIFO_DEPTH)) u_in_fifo (
        .clk, .rst_n, .in_tdata(rx_data), .in_tvalid(rx_valid), .in_tready(fifo_in_ready),
        .out_tdata(fb_tdata), .out_tvalid(fb_tvalid), .out_tready(fb_tready));

    // Bytes -> input beats (first byte lowest).
    logic [IN_W-1:0] in_tdata;
    logic            in_tvalid, in_tready;
    axis_dwc #(.IN_W(8), .OUT_W(IN_W)) u_in_dwc (
        .clk, .rst_n, .in_tdata(fb_tdata), .in_tvalid(fb_tvalid), .in_tready(fb_tready),
        .out_tdata(in_tdata), .out_tvalid(in_tvalid), .out_tready(in_tready));

    logic [OUT_W-1:0] out_tdata;
    logic             out_tvalid, out_tready;
    bnn_top u_acc (
        .ap_clk(clk), .ap_rst_n(rst_n),
        .in0_V_TDATA(in_tdata), .in0_V_TVALID(in_tvalid), .in0_V_TREADY(in_tready),
        .out0_V_TDATA(out_tdata), .out0_V_TVALID(out_tvalid), .out0_V_TREADY(out_tready));

    // Output beats -> bytes (lowest first) -> serial out.
    logic [7:0] tb_tdata;
    logic       tb_tvalid, tb_tready;
    axis_dwc #(.IN_W(OUT_W), .OUT_W(8)) u_out_dwc (
        .clk, .rst_n, .in_tdata(out_tdata), .in_tvalid(out_tvalid), .in_tready(out_tready),
        .out_tdata(tb_tdata), .out_tvalid(tb_tvalid), .out_tready(tb_tready));
    uart_tx #(.CLK_HZ(CLK_HZ), .BAUD(BAUD)) u_tx (
        .clk, .rst_n, .s_tdata(tb_tdata), .s_tvalid(tb_tvalid), .s_tready(tb_tready), .tx(uart_tx));

    // Status LEDs.
    always_ff @(posedge clk) begin
        if (!rst_n) begin
            led0 <= 1'b0;
            led1 <= 1'b0;
        end else begin
            if (rx_valid) led0 <= !led0;
            if ((rx_valid && !fifo_in_ready) || rx_err) led1 <= 1'b1;
        end
    end
endmodule
